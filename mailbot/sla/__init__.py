"""Business time and service levels: the calendar (`calendar`), the SLA clock that stands still
while a ticket waits (`clock`), each ticket's deadlines (`deadlines`) and the service report."""

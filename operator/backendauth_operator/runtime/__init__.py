"""The running operator: Kopf wiring, the work queue, the step's executor and effects, leader election."""

from ops.maintenance.command import job_command

Command = job_command(__name__)

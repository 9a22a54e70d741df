from ops.maintenance.command import MaintenanceCommand as Command

__all__ = ["Command"]

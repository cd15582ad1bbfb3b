"""The roles moved to core/roles.py (roles and access are core's: core.access needs them, and core imports
nothing above it). This name stays so that older imports keep working; new code imports core.roles."""

from core.roles import (
    ADMINISTRATOR,
    CLIENT,
    COMPLIANCE,
    CREDIT_OFFICER,
    ROLES,
    SENIOR_CREDIT_OFFICER,
    STAFF_ROLES,
    roles_ensure,
)

__all__ = [
    "ADMINISTRATOR",
    "CLIENT",
    "COMPLIANCE",
    "CREDIT_OFFICER",
    "ROLES",
    "SENIOR_CREDIT_OFFICER",
    "STAFF_ROLES",
    "roles_ensure",
]

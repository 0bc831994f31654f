"""Sign-in fixtures shared by tests/workbench/ui/test_ui_auth.py and test_ui_auth_local.py: an OIDC
secrets file, a roles file, a strong cookie secret, a loopback serving context."""

from __future__ import annotations

from workbench.auth._config import (
    ENV_AUTH,
    ENV_ROLE,
    ENV_ROLES_FILE,
    ENV_SECRETS_FILE,
    ENV_WORKSPACE,
)
from workbench.auth._serving import ServingContext

__all__ = ["AUTH_ENV", "ISS", "LOOPBACK", "ROLES", "SECRETS", "STRONG"]

#: The environment variables sign-in reads; the tests start with none of them set.
AUTH_ENV = (ENV_AUTH, ENV_ROLE, ENV_ROLES_FILE, ENV_SECRETS_FILE, ENV_WORKSPACE)

SECRETS = """
[auth]
redirect_uri = "http://wb.example:8501/oauth2callback"
cookie_secret = "Vq3xK9bT2mZ7wR4pL8nY1cF6hJ0dS5gA-eU_iOoQzWk"
client_id = "workbench"
client_secret = "s3cret"
server_metadata_url = "https://idp.example/.well-known/openid-configuration"
"""

ISS = "https://idp.example"
ROLES = """
claim = "workbench_role"
[subjects."https://idp.example"]
"sub-derm" = "dermatologist"
[emails]
"Audit@Clinic.example" = "auditor"
"""


LOOPBACK = ServingContext(address="127.0.0.1", listening=("127.0.0.1",))
STRONG = "Vq3xK9bT2mZ7wR4pL8nY1cF6hJ0dS5gA-eU_iOoQzWk"

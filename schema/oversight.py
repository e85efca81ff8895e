"""What a privacy officer's read of one patient's access log needs to know before the policy
decides: is the patient of the officer's municipality (`policies.Oversight`)?

Sits between the `accessLog` resolver (and the `/audit/export` door) and the policy: it asks
the population registry for the patient's home municipality (`schema.pipeline.home`, Kilde's
own HelseID token, cached like any fetch) and the audit trail whether it holds data of the
officer's municipality for them. A registry that cannot answer is an error
(`RegistryUnavailableError`: UPSTREAM_UNAVAILABLE, source `persontjenesten`), never a guess
and never an unfiltered log; a deployment with no registry decides on the audit trail alone.

    oversight = await oversight_of(nin, "0301", services=services, credentials=ctx.credentials)
    decision = decide_access_log(principal, nin, rules=rules, oversight=oversight)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.credentials import Credentials
from policies import Oversight
from schema.errors import RegistryUnavailableError
from schema.pipeline.home import home_municipality

if TYPE_CHECKING:
    from schema.context import Services


async def oversight_of(nin: str, municipality: str, *, services: Services,
                       credentials: Credentials, request_id: str = "") -> Oversight:
    """The facts `decide_access_log` needs for the officer of `municipality` and `nin`."""
    home = await home_municipality(services, nin, credentials=credentials,
                                   request_id=request_id)
    if home.failed:
        raise RegistryUnavailableError()
    if home.municipality == municipality:  # the home decides; the trail need not be asked
        return Oversight(home_municipality=home.municipality, holds_own_data=False)
    own = await services.access_log.holds_data_of(patient_nin=nin, municipality=municipality)
    return Oversight(home_municipality=home.municipality, holds_own_data=own)

"""CDS Hooks: the standard door for EPJs that show decision-support cards (CDS Hooks 2.0).

Sits at the HTTP edge beside `/graphql`: `service.py` answers discovery and the `patient-view`
hook through the one GraphQL execution path, `cards.py` turns the answer into cards, and
`clientjwt.py` checks the EPJ's own signed JWT where the operator requires one.
"""

from __future__ import annotations

from gateway.cds.clientjwt import ClientJwtVerifier
from gateway.cds.service import SERVICE_ID, PatientViewService, discovery

__all__ = ["SERVICE_ID", "ClientJwtVerifier", "PatientViewService", "discovery"]

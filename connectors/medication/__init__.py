"""Shared code of the medication sources (`pll`, `eresept`): the SFM `$getMedication` client
(`sfm`, `connector`) and the cross-source linking of one treatment's records (`linking`)."""

from __future__ import annotations

from connectors.medication.linking import link_medications

__all__ = ["link_medications"]

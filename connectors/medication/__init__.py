"""Shared code of the medication sources (`pll`, `eresept`): the SFM `$getMedication` client
(`sfm`, `connector`). Linking one treatment's records across sources is not one source's
concern: it lives in `schema.shape.linking`."""

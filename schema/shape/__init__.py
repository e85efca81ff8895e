"""Shape, the fourth stage of a patient request: judged items in, what a clinician reads out.

Pure functions over the unified model, after the judge stage and before the schema serves a
field: `alerts` (the first-screen warnings, clinically ordered), `linking` (one treatment's
records from several sources become one item), `ordering` (each category's clinical order).
Nothing here does IO or asks a policy.
"""

"""The patient pipeline: one `patient(nin)` request in named stages, each a value the next takes.

    plan    schema.pipeline.plan     policies decide categories and stores -> Plan
    fetch   schema.pipeline.fetch    one task per source, within the deadline -> Outcome
    judge   schema.pipeline.judge    policies over each outcome -> Judgement
    shape   schema.shape             alerts, linking, ordering, conflicts (pure)
    ledger  schema.pipeline.ledger   what was delivered -> Ledger, read by the gateway

`schema.pipeline.request.PatientRequest` wires them together lazily for the field resolvers;
`docs/architecture.md` draws the whole request flow.
"""

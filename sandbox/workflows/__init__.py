"""The faults between the queue and everything else: dual write vs outbox, sagas, fan-in, pipelines and priority
inversion on real jobs and the site's own database.

A workflow is chosen by the `workflow` parameter. Its request handler runs inside the message handler
(sandbox.engine.handler) as the run's side effect, so admission, retries, the DLQ, limits and the
accounting are the engine's own; its background work (an outbox relay, a consumer) runs as real RQ jobs
(sandbox.workflows.jobs) that keep the run open until they have settled.
"""


def is_workflow(params: dict) -> bool:
    """Whether the run has a workflow around its queue (else each message charges an order)."""
    return params.get("workflow", "none") != "none"

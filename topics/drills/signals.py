"""Drill progress, mock interviews and the plan follow an anonymous visitor into the account they log in to."""

from django.dispatch import receiver

from prepsite.visitor import Visitor, anonymous_visitor_claimed
from topics.drills.services import learner_merge, plan_claim


@receiver(anonymous_visitor_claimed, dispatch_uid="drills_claim_anonymous_progress")
def claim_anonymous_progress(sender, source: Visitor, target: Visitor, **kwargs) -> None:
    learner_merge(source=source, target=target)
    plan_claim(source=source, target=target)

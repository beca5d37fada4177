"""One definition of a row a visitor owns (prepsite.visitor): the account, or an anonymous id until they
log in. Study's marks, Drills' cards, attempts and mock interviews and the Lab's experiments all use it."""

from django.conf import settings
from django.db import models

from prepsite.visitor import ANON_ID_LENGTH, Visitor


class VisitorOwnedQuerySet(models.QuerySet):
    def owned_by(self, visitor: Visitor | None):
        """The rows of this visitor; none when there is no visitor yet."""
        return self.filter(**visitor.lookup()) if visitor is not None else self.none()


class VisitorOwned(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    anon_id = models.CharField(max_length=ANON_ID_LENGTH, blank=True, db_index=True)

    class Meta:
        abstract = True

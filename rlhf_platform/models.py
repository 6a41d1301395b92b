"""API tokens: several named ones per user, stored as a hash, with an optional expiry.

The key is shown once, when it is created (``rlhf_platform.services.token_create``); the database
keeps only its SHA-256 digest, which authentication looks up through a unique index
(``rlhf_platform.authentication``). A database leak therefore gives away no usable key. SHA-256
without salt is enough here, unlike for passwords: keys are 256 random bits, not guessable words.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenStatus(models.TextChoices):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ApiToken(models.Model):
    # The first characters of the key, to tell tokens apart in lists without showing the key.
    PREFIX_LENGTH = 8
    NAME_MAX_LENGTH = 100

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=NAME_MAX_LENGTH)
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=PREFIX_LENGTH)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="apitoken_user_created")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def status(self, now: datetime | None = None) -> ApiTokenStatus:
        if self.revoked_at is not None:
            return ApiTokenStatus.REVOKED
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return ApiTokenStatus.EXPIRED
        return ApiTokenStatus.ACTIVE


class Instance(models.Model):
    """One row: the random id of this instance, also written to ``VAR_DIR/instance-id``
    (``rlhf_platform.instance``), so that a worker can tell whether it sees the web server's VAR_DIR."""

    marker = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"instance {self.marker[:8]}…"

"""Move DRF's single tokens (rest_framework.authtoken) into the named, hashed API tokens.

Each keeps working with the same key, named as migrated and without expiry; the plain keys are
then deleted, since keeping them would defeat storing digests. Going back cannot restore them.
"""

import hashlib

from django.db import migrations


def move_drf_tokens(apps, schema_editor):
    drf_token = apps.get_model("authtoken", "Token")
    api_token = apps.get_model("rlhf_platform", "ApiToken")
    api_token.objects.bulk_create(
        [
            api_token(
                user_id=token.user_id,
                name="API token (from before named tokens)",
                digest=hashlib.sha256(token.key.encode()).hexdigest(),
                prefix=token.key[:8],
                created_at=token.created,
            )
            for token in drf_token.objects.all()
        ],
        batch_size=1000,
    )
    drf_token.objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("rlhf_platform", "0002_api_tokens"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(move_drf_tokens, migrations.RunPython.noop)]

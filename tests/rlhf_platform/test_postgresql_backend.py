"""PostgreSQL with server-side parameters: statements stay under its 65,535-parameter limit."""

import pytest
from django.db import connection

from labeling.models import Campaign, Response, Task
from rlhf_platform.postgresql.base import MAX_STATEMENT_PARAMETERS
from tests.labeling.factories import make_campaign

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql" or not connection.features.uses_server_side_binding,
    reason="the limit applies to PostgreSQL with server-side parameters; CI runs this on PostgreSQL",
)


def test_batches_fit_the_parameter_limit():
    assert connection.features.max_query_params == MAX_STATEMENT_PARAMETERS
    fields = ["task", "position", "text", "model_name", "meta"]
    assert connection.ops.bulk_batch_size(fields, [None] * 100_000) == MAX_STATEMENT_PARAMETERS // len(fields)
    assert connection.ops.bulk_batch_size(fields, [None] * 10) == 10


@pytest.mark.django_db
def test_a_campaign_with_more_responses_than_the_limit_can_be_deleted(manager):
    campaign = make_campaign(manager=manager, reviewers=[], tasks=[])
    tasks = Task.objects.bulk_create(
        Task(campaign=campaign, external_id=f"t{i}", prompt="Q", response_count=1) for i in range(66_000)
    )
    Response.objects.bulk_create(Response(task=task, position=0, text="A") for task in tasks)
    # Django's collector deletes the cascade by ids; unbatched, this was one statement of 66,000 parameters.
    Campaign.objects.filter(pk=campaign.pk).delete()
    assert not Task.objects.exists() and not Response.objects.exists()

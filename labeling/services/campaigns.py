"""Creating and changing projects and campaigns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from labeling import selectors
from labeling.errors import Conflict, LabelingError
from labeling.models import Campaign, CampaignStatus, Project
from labeling.schema import SchemaError, parse_question_schema
from rlhf_platform.audit import Action, audit_record, changed_fields
from rlhf_platform.roles import Role

# Which status may follow which. A closed campaign stays closed: its data feeds datasets.
STATUS_TRANSITIONS = {
    CampaignStatus.DRAFT: {CampaignStatus.ACTIVE, CampaignStatus.CLOSED},
    CampaignStatus.ACTIVE: {CampaignStatus.PAUSED, CampaignStatus.CLOSED},
    CampaignStatus.PAUSED: {CampaignStatus.ACTIVE, CampaignStatus.CLOSED},
    CampaignStatus.CLOSED: set(),
}
CAMPAIGN_FIELDS = ("name", "slug", "question_schema", "guidelines", "overlap", "lease_seconds", "gold_rate")


# Words that are page addresses under /manage/campaigns/ and /manage/projects/.
RESERVED_SLUGS = {"new"}


def _unique_slug(model: type, wanted: str, name: str) -> str:
    slug = slugify(wanted or name)[:90]
    if not slug:
        raise LabelingError("Give a name with letters or digits.", {"name": "Needs letters or digits."})
    if wanted and slug in RESERVED_SLUGS:
        raise LabelingError("That slug is reserved.", {"slug": f"{slug!r} is a page address; choose another."})
    if wanted and model.objects.filter(slug=slug).exists():
        raise LabelingError("That slug is taken.", {"slug": f"{slug!r} is already used."})
    candidate, suffix = slug, 2
    while candidate in RESERVED_SLUGS or model.objects.filter(slug=candidate).exists():
        candidate, suffix = f"{slug}-{suffix}", suffix + 1
    return candidate


def project_create(*, name: str, created_by: AbstractBaseUser, slug: str = "", description: str = "") -> Project:
    name = (name or "").strip()
    if not name:
        raise LabelingError("A project needs a name.", {"name": "This field is required."})
    try:
        with transaction.atomic():
            project = Project.objects.create(
                name=name[:200],
                slug=_unique_slug(Project, slug, name),
                description=description,
                created_by=created_by,
            )
            audit_record(actor=created_by, action=Action.PROJECT_CREATE, target=project)
    except IntegrityError:
        raise LabelingError("That slug is taken.", {"slug": "Already used."}) from None
    return project


@transaction.atomic
def project_update(
    *,
    project: Project,
    name: str | None = None,
    description: str | None = None,
    actor: AbstractBaseUser | None = None,
) -> Project:
    """Rename or re-describe a project; its slug stays, since addresses and exports use it."""
    before = {"name": project.name, "description": project.description}
    changed = []
    if name is not None:
        if not name.strip():
            raise LabelingError("A project needs a name.", {"name": "This field is required."})
        project.name = name.strip()[:200]
        changed.append("name")
    if description is not None:
        project.description = description
        changed.append("description")
    if changed:
        project.save(update_fields=changed)
        changes = changed_fields(project, before, changed)
        if changes:
            audit_record(actor=actor, action=Action.PROJECT_UPDATE, target=project, changes=changes)
    return project


@transaction.atomic
def project_delete(*, project: Project, actor: AbstractBaseUser | None = None) -> None:
    """Delete an empty project; one with campaigns keeps them (and their judgements) safe."""
    if project.campaigns.exists():
        raise Conflict("Delete or move the project's campaigns first.")
    audit_record(actor=actor, action=Action.PROJECT_DELETE, target=project, name=project.name)
    project.delete()


def _clean_campaign_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Check the editable campaign fields; raises ``LabelingError`` with every field error."""
    errors: dict[str, str] = {}
    cleaned = dict(fields)
    if "name" in fields and not (fields["name"] or "").strip():
        errors["name"] = "This field is required."
    if "question_schema" in fields:
        try:
            cleaned["question_schema"] = parse_question_schema(fields["question_schema"]).to_json()
        except SchemaError as error:
            errors.update({f"question_schema.{path}": message for path, message in error.errors.items()})
    if "overlap" in fields and not (isinstance(fields["overlap"], int) and 1 <= fields["overlap"] <= 50):
        errors["overlap"] = "Must be a whole number from 1 to 50."
    if "lease_seconds" in fields and not (
        isinstance(fields["lease_seconds"], int) and 30 <= fields["lease_seconds"] <= 7 * 24 * 3600
    ):
        errors["lease_seconds"] = "Must be from 30 seconds to 7 days."
    if "gold_rate" in fields and not (isinstance(fields["gold_rate"], int | float) and 0 <= fields["gold_rate"] <= 0.5):
        errors["gold_rate"] = "Must be a share from 0 to 0.5."
    if errors:
        raise LabelingError("Some fields need fixing.", errors)
    return cleaned


@transaction.atomic
def campaign_create(*, project: Project, created_by: AbstractBaseUser, **fields: Any) -> Campaign:
    unknown = set(fields) - set(CAMPAIGN_FIELDS)
    if unknown:
        raise TypeError(f"unknown campaign fields: {sorted(unknown)}")
    if "question_schema" not in fields:
        raise LabelingError("A campaign needs questions.", {"question_schema": "This field is required."})
    cleaned = _clean_campaign_fields({"name": fields.get("name", ""), **fields})
    cleaned["name"] = cleaned["name"].strip()[:200]
    cleaned["slug"] = _unique_slug(Campaign, cleaned.get("slug", ""), cleaned["name"])
    campaign = Campaign.objects.create(project=project, created_by=created_by, **cleaned)
    audit_record(actor=created_by, action=Action.CAMPAIGN_CREATE, target=campaign, project=project.name)
    return campaign


@transaction.atomic
def campaign_update(*, campaign: Campaign, actor: AbstractBaseUser | None = None, **fields: Any) -> Campaign:
    """Change a campaign's settings. Questions are fixed once it has judgements.

    Locks the campaign row so two editors do not interleave.
    """
    unknown = set(fields) - set(CAMPAIGN_FIELDS)
    if unknown:
        raise TypeError(f"unknown campaign fields: {sorted(unknown)}")
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    cleaned = _clean_campaign_fields(fields)
    if "question_schema" in cleaned and cleaned["question_schema"] != campaign.question_schema:
        if selectors.campaign_has_judgements(campaign=campaign):
            raise Conflict(
                "Questions cannot change once reviewers have answered them; create a new campaign instead.",
                {"question_schema": "Fixed once there are judgements."},
            )
        if campaign.tasks.exists():
            problem = _schema_conflict_with_tasks(campaign, cleaned["question_schema"])
            if problem:
                raise LabelingError(problem, {"question_schema": problem})
    if "slug" in cleaned and cleaned["slug"] != campaign.slug:
        cleaned["slug"] = _unique_slug(Campaign, cleaned["slug"], campaign.name)
    before = {name: getattr(campaign, name) for name in cleaned}
    for name, value in cleaned.items():
        setattr(campaign, name, value.strip() if name == "name" else value)
    campaign.save(update_fields=[*cleaned, "updated_at"])
    changes = changed_fields(campaign, before, list(cleaned))
    if changes:
        audit_record(actor=actor, action=Action.CAMPAIGN_UPDATE, target=campaign, changes=changes)
    return campaign


@transaction.atomic
def campaign_delete(*, campaign: Campaign, actor: AbstractBaseUser | None = None) -> None:
    """Delete a draft campaign with no judgements; anything else is closed instead, keeping its data."""
    if campaign.status != CampaignStatus.DRAFT or selectors.campaign_has_judgements(campaign=campaign):
        raise Conflict("Only a draft campaign without judgements can be deleted; close it instead.")
    audit_record(actor=actor, action=Action.CAMPAIGN_DELETE, target=campaign, name=campaign.name)
    campaign.delete()


def _schema_conflict_with_tasks(campaign: Campaign, question_schema: dict[str, Any]) -> str | None:
    schema = parse_question_schema(question_schema)
    counts = campaign.tasks.filter(response_count__gt=0).values_list("response_count", flat=True).distinct()
    for count in counts:
        problem = schema.check_response_count(count)
        if problem:
            return f"The campaign's tasks do not fit these questions: {problem}."
    return None


@transaction.atomic
def campaign_set_status(*, campaign: Campaign, status: str, actor: AbstractBaseUser | None = None) -> Campaign:
    """Move a campaign to ``status`` if the transition is allowed. Locks the campaign row."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if status not in CampaignStatus.values:
        raise LabelingError(f"Unknown status {status!r}.", {"status": f"One of {', '.join(CampaignStatus.values)}."})
    if status == campaign.status:
        return campaign
    if status not in STATUS_TRANSITIONS[CampaignStatus(campaign.status)]:
        raise Conflict(f"A {campaign.status} campaign cannot become {status}.", {"status": "Not allowed from here."})
    if status == CampaignStatus.ACTIVE and not campaign.tasks.filter(response_count__gte=2).exists():
        raise Conflict("Import tasks with responses before starting the campaign.", {"status": "No tasks yet."})
    changes = {"status": (campaign.status, status)}
    campaign.status = status
    campaign.save(update_fields=["status", "updated_at"])
    audit_record(actor=actor, action=Action.CAMPAIGN_STATUS, target=campaign, changes=changes)
    return campaign


@transaction.atomic
def campaign_set_reviewers(
    *, campaign: Campaign, usernames: Iterable[str], actor: AbstractBaseUser | None = None
) -> list[str]:
    """Replace the campaign's reviewer pool. Only users in the reviewers group can join."""
    wanted = sorted({u.strip() for u in usernames if u and u.strip()})
    if any("\x00" in username for username in wanted):
        # No user can have it, and PostgreSQL refuses it in a query (a 500 instead of an answer).
        raise LabelingError(
            "A username cannot contain a NUL character.", {"reviewers": "A username cannot contain a NUL character."}
        )
    users = list(
        get_user_model().objects.filter(username__in=wanted, is_active=True, groups__name=Role.REVIEWER).distinct()
    )
    missing = sorted(set(wanted) - {u.get_username() for u in users})
    if missing:
        raise LabelingError(
            f"Not active reviewers: {', '.join(missing)}.", {"reviewers": f"Unknown or not reviewers: {missing}"}
        )
    before = sorted(campaign.reviewers.values_list("username", flat=True))
    campaign.reviewers.set(users)
    if before != wanted:
        audit_record(actor=actor, action=Action.CAMPAIGN_POOL, target=campaign, changes={"reviewers": (before, wanted)})
    return wanted


@transaction.atomic
def campaign_add_team(*, campaign: Campaign, team_id: int, actor: AbstractBaseUser | None = None) -> list[str]:
    """Add a team's current active reviewers to the campaign's pool; the usernames added.

    A snapshot, not a link: people who join the team later are not added, and nobody leaves the pool
    when they leave the team. The pool stays one plain list, so the claim path's membership check
    (labeling/services/assignment.py) is the same single lookup as before.
    """
    from django.contrib.auth.models import Group

    team = Group.objects.exclude(name__in=list(Role)).filter(pk=team_id).first()
    if team is None:
        raise LabelingError("No such team.", {"team": "Choose a team from the list."})
    # The campaign row is locked so that two additions at once each see the other's reviewers.
    Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
    before = sorted(campaign.reviewers.values_list("username", flat=True))
    # Two filter() calls: two joins on the groups, one for the team and one for the reviewers' role.
    reviewers = list(
        get_user_model()
        .objects.filter(groups=team)
        .filter(is_active=True, groups__name=Role.REVIEWER)
        .exclude(pk__in=campaign.reviewers.all())
    )
    added = sorted(user.get_username() for user in reviewers)
    if added:
        campaign.reviewers.add(*reviewers)
        audit_record(
            actor=actor,
            action=Action.CAMPAIGN_POOL,
            target=campaign,
            changes={"reviewers": (before, sorted([*before, *added]))},
            team=team.name,
        )
    return added

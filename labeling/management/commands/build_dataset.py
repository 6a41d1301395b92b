from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.datasets import KINDS, METHODS, TIE_POLICIES
from labeling.errors import LabelingError
from labeling.models import Campaign
from labeling.services.datasets import dataset_build, dataset_params


class Command(BaseCommand):
    help = "Aggregate campaigns' judgements into an immutable preference dataset snapshot."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", action="append", required=True, help="A campaign slug; repeat for several.")
        parser.add_argument("--kind", choices=KINDS, default="preference", help="preference, sft or kto rows.")
        parser.add_argument("--method", choices=METHODS, default="bradley_terry")
        parser.add_argument("--name", default="")
        parser.add_argument("--min-votes", type=int, default=1)
        parser.add_argument("--min-agreement", type=float, default=0.0)
        parser.add_argument("--min-confidence", type=float, default=0.5)
        parser.add_argument("--ties", choices=TIE_POLICIES, default="drop")
        parser.add_argument("--keep-flagged", action="store_true", help="Keep pairs with a flagged response.")
        parser.add_argument("--keep-both-bad", action="store_true", help="Keep pairs most reviewers called both bad.")
        parser.add_argument("--include-gold", action="store_true")
        parser.add_argument("--exclude-reviewer", action="append", default=[], help="A username; repeat for several.")
        parser.add_argument("--test-fraction", type=float, default=0.0, help="Share of prompts held out as test.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--user", default="", help="Recorded as the creator; defaults to the first superuser.")

    def handle(self, *args, **options) -> None:
        campaigns = list(Campaign.objects.filter(slug__in=options["campaign"]))
        missing = set(options["campaign"]) - {c.slug for c in campaigns}
        if missing:
            raise CommandError(f"No campaign with slug {', '.join(sorted(missing))}.")
        users = get_user_model().objects
        excluded = list(users.filter(username__in=options["exclude_reviewer"]).values_list("pk", flat=True))
        if len(excluded) != len(set(options["exclude_reviewer"])):
            raise CommandError("Some --exclude-reviewer names are not users.")
        creator = (
            users.filter(username=options["user"]).first()
            if options["user"]
            else users.filter(is_superuser=True).order_by("pk").first()
        )
        if creator is None:
            raise CommandError("Name the creator with --user (no superuser exists).")
        try:
            params = dataset_params(
                kind=options["kind"],
                method=options["method"],
                min_votes=options["min_votes"],
                min_agreement=options["min_agreement"],
                min_confidence=options["min_confidence"],
                ties=options["ties"],
                drop_flagged=not options["keep_flagged"],
                drop_both_bad=not options["keep_both_bad"],
                include_gold=options["include_gold"],
                exclude_reviewers=tuple(excluded),
                test_fraction=options["test_fraction"],
                seed=options["seed"],
            )
            dataset, created = dataset_build(
                campaigns=campaigns, params=params, created_by=creator, name=options["name"]
            )
        except LabelingError as error:
            details = "; ".join(f"{k}: {v}" for k, v in error.errors.items())
            raise CommandError(f"{error.message} {details}".strip()) from None
        counts = dataset.counts
        state = "built" if created else "already built (same inputs and parameters)"
        self.stdout.write(
            f"Dataset {dataset.pk} ({dataset.kind}) {state}: {counts['rows']} rows from {counts['prompts']} prompts, "
            f"splits {counts['splits']}, dropped {counts['dropped'] or 'none'}; hash {dataset.content_hash}"
        )

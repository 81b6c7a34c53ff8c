"""Business Central webhook subscriptions kept alive: an hourly schedule creates missing ones, renews expiring ones."""

import os

import dagster as dg

from bc_pipeline.clients.bc_api import BusinessCentralApi
from bc_pipeline.defs.resources import BC_POOL, SubscriptionResource
from bc_pipeline.webhooks.subscriptions import RENEW_WITHIN, ensure, in_force

NOTIFICATION_URL_VARIABLE = "BC_WEBHOOK_NOTIFICATION_URL"


@dg.op(pool=BC_POOL, description="Create the missing BC webhook subscriptions and renew those expiring within a day.")
def renew_bc_webhook_subscriptions(context: dg.OpExecutionContext, subscription: SubscriptionResource) -> None:
    settings = subscription.settings()
    client = subscription.business_central()
    try:
        found = ensure(BusinessCentralApi(client), settings)
    finally:
        client.close()
    for item in found:
        context.log.info(f"{item.entity.name}: {item.action or item.state}, expires {item.expires}")
    context.add_output_metadata({"subscriptions": dg.MetadataValue.json([s.row() for s in found]),
                                 "in force": in_force(found)})


@dg.job(name="bc_webhook_subscriptions", description="Business Central webhook subscriptions: create the missing, "
        "renew those expiring (BC lets one lapse 3 days after its (re)newal).")
def bc_webhook_subscriptions_job():
    renew_bc_webhook_subscriptions()


@dg.schedule(name="bc_webhook_subscriptions_hourly", job=bc_webhook_subscriptions_job, cron_schedule="0 * * * *",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description=f"Keeps BC webhook subscriptions alive (renewed {RENEW_WITHIN.days} day before expiry); skips "
             f"while {NOTIFICATION_URL_VARIABLE} is not set (then the 15-minute incremental schedule is the way).")
def bc_webhook_subscriptions_schedule(context: dg.ScheduleEvaluationContext):
    if not os.environ.get(NOTIFICATION_URL_VARIABLE, "").strip():
        return dg.SkipReason(f"{NOTIFICATION_URL_VARIABLE} is not set: no webhook subscriptions; switch on "
                             "incremental_sync_every_15_minutes for Business Central's changes")
    return dg.RunRequest(run_key=context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else None)

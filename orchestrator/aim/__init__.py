"""The AIM pipeline (docs/jobs/aim.md): FlpAimImport puts pending PLSP.FLP_AIM ids on the
queue (``importer``), the consumer turns them into care-plan documents in MongoDB
(``consumer``, ``store``); ``settings`` reads the pipeline's rows of Ops.Setting.

The queue name is fixed: ``flp.aim`` (RabbitMQ queue, or Ops.QueueMessage.QueueName),
dead letters in ``flp.aim.dead`` (RabbitMQ) or Ops.QueueDeadLetter.
"""

QUEUE_NAME = "flp.aim"
IMPORT_JOB = "aim_import"

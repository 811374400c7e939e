-- Migration 0008 on SQL Server (twin of db/schema/postgresql/0008_aim_pipeline.up.sql):
-- what the AIM pipeline and the database queue need beside the foundation.

-- The database queue (Ops.QueueMessage, the embedded default beside RabbitMQ):
-- each receive stamps a new receipt, and only the holder of the current
-- receipt may acknowledge, release or dead-letter the message. A consumer whose
-- visibility timeout ran out (and whose message went to another consumer)
-- therefore cannot acknowledge the other one's delivery.
ALTER TABLE Ops.QueueMessage ADD ReceiptToken uniqueidentifier NULL;
GO

-- Messages that will not be processed, with the reason (never a CPR number).
CREATE TABLE Ops.QueueDeadLetter (
    DeadLetterId bigint IDENTITY (1, 1) NOT NULL,
    QueueName varchar(100) NOT NULL,
    MessageId bigint NULL,               -- the Ops.QueueMessage it was; NULL when dead-lettered directly
    Body nvarchar(MAX) NOT NULL,
    EnqueuedUtc datetime2(3) NOT NULL,
    DeliveryCount int NOT NULL,
    Reason nvarchar(1000) NOT NULL,
    DeadLetteredUtc datetime2(3) NOT NULL CONSTRAINT DF_QueueDeadLetter_DeadLetteredUtc DEFAULT (SYSUTCDATETIME()),
    CONSTRAINT PK_QueueDeadLetter PRIMARY KEY CLUSTERED (DeadLetterId)
);
CREATE NONCLUSTERED INDEX IX_QueueDeadLetter_Queue ON Ops.QueueDeadLetter (QueueName, DeadLetteredUtc);
GO

-- FlpAimImport: the run that claimed a row last, so it marks queued exactly
-- the rows it published. A claim leaves Status alone (0 stays pending), so a
-- run that dies between claim and publish leaves nothing behind.
ALTER TABLE PLSP.FLP_AIM ADD ClaimJobRunId bigint NULL;
GO

-- The import claims pending rows and queued rows past their visibility
-- timeout, in Id order, without reading delivered rows.
CREATE NONCLUSTERED INDEX IX_FLP_AIM_Undelivered ON PLSP.FLP_AIM (Id) INCLUDE (Status, QueuedUtc) WHERE Status IN (0, 1);
GO

INSERT INTO Ops.Setting (JobName, Name, Value, Description) VALUES
('aim_import', 'MaxRows', '150000', 'most FLP_AIM rows one run publishes'),
('aim_import', 'MessageSize', '1000', 'FLP_AIM ids in one message'),
('aim_import', 'ClaimBatchSize', '3000', 'rows claimed in one short transaction (under the 5,000-lock escalation threshold)'),
('aim_import', 'VisibilityTimeoutSeconds', '7200', 'a queued row not delivered after this many seconds is published again'),
('aim_import', 'TimeLimitSeconds', '1500', 'no new claim after this many seconds (the import starts every 1800)'),
('aim_consume', 'MaxAttempts', '5', 'deliveries of a failing message before it is dead-lettered'),
('aim_consume', 'Concurrency', '2', 'messages processed at the same time by one consumer process'),
('aim_consume', 'QueueVisibilitySeconds', '300', 'database queue: a received message not acknowledged in this time is delivered again'),
('aim_consume', 'RecentValueDays', '730', 'patient values measured (or received) within this many days go into the document'),
('aim_consume', 'MongoDatabase', 'flp_aim', 'MongoDB database of the care-plan documents'),
('aim_consume', 'MongoCollection', 'careplans', 'MongoDB collection of the care-plan documents'),
('aim_consume', 'MongoWriteConcern', '1', 'write concern w: 1, 2, ... or majority'),
('aim_consume', 'MongoTimeoutMs', '10000', 'server selection, connect and socket timeout, milliseconds');
GO

"""The daily operations report ("Drift e-mails", issue 12): statistics from the database
(Monitor.daily_statistics), a status with its reasons, HTML and text from Jinja2 templates, a
PNG chart of the last 14 days, and delivery by SMTP through an outbox (docs/reports.md).

Modules: ``statistics`` (the model), ``settings`` (recipients and thresholds from Ops.Setting),
``assess`` (OK / WARN / FAIL), ``chart``, ``render``, ``mail``, ``outbox`` (delivery exactly
once), ``job`` (the 23:30 job and ``flp report``).
"""

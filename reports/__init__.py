"""Operations statistics and the daily operations e-mail (drift e-mails).

Empty until the operations-statistics job lands: the statistics are computed by
a stored procedure, rendered and mailed from here.
"""

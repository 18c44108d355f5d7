# Django's own Chinese DATETIME_FORMAT has no time of day ("Y年n月j日"); the portal shows both.
DATE_FORMAT = "Y年n月j日"
DATETIME_FORMAT = "Y年n月j日 H:i"
TIME_FORMAT = "H:i"

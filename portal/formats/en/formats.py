# Day, short month and year with a 24-hour clock: "3 Dec 2026, 14:05" reads the same wherever English
# is read, unlike "Dec. 3, 2026, 2:05 p.m.", and leaves no doubt whether 3/12 is March or December.
DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i"
TIME_FORMAT = "H:i"

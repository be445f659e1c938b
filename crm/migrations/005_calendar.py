"""calendar_days: one row per day from 1900 to 2100 with its Jalali (Persian) year, month, day
and quarter, so charts group by the user's calendar in SQL with a plain join.

The month starts come from jdatetime (about 2,400 months); the days are expanded with numpy,
which keeps a new database quick to create."""
from datetime import date

import jdatetime

FIRST, LAST = date(1900, 1, 1), date(2100, 12, 31)


def apply(cur) -> None:
    import numpy as np
    import pandas as pd

    cur.execute(
        "CREATE TABLE calendar_days (day DATE PRIMARY KEY, jalali_year INTEGER NOT NULL,"
        " jalali_month INTEGER NOT NULL, jalali_day INTEGER NOT NULL,"
        " jalali_quarter INTEGER NOT NULL)")
    first = jdatetime.date.fromgregorian(date=FIRST)
    year, month = first.year, first.month
    months = []
    while True:
        starts = jdatetime.date(year, month, 1).togregorian()
        months.append((year, month, starts))
        if starts > LAST:
            break
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    lengths = np.array([(b[2] - a[2]).days for a, b in zip(months, months[1:])])
    firsts = np.array([m[2] for m in months[:-1]], dtype="datetime64[D]")
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    frame = pd.DataFrame({
        "day": np.repeat(firsts, lengths) + offsets.astype("timedelta64[D]"),
        "jalali_year": np.repeat([m[0] for m in months[:-1]], lengths),
        "jalali_month": np.repeat([m[1] for m in months[:-1]], lengths),
        "jalali_day": offsets + 1})
    frame["jalali_quarter"] = (frame["jalali_month"] - 1) // 3 + 1
    frame = frame[(frame["day"] >= np.datetime64(FIRST)) & (frame["day"] <= np.datetime64(LAST))]
    cur.register("calendar_frame", frame)
    cur.execute("INSERT INTO calendar_days SELECT CAST(day AS DATE), jalali_year, jalali_month,"
                " jalali_day, jalali_quarter FROM calendar_frame")
    cur.unregister("calendar_frame")

#!/usr/bin/env python3
"""Builds sakila.db, a small SQLite version of the Sakila sample database, for the quickstart.

The data is generated from a fixed seed, so the file is reproducible: `python3 make_db.py`
rewrites it byte for byte the same. It is committed so the quickstart needs nothing but cargo.
Column types cover what a lake must carry faithfully: integers, exact decimals, text, dates,
timestamps, booleans, blobs, JSON text and NULLs.
"""
import json
import os
import random
import sqlite3
from datetime import datetime, timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "sakila.db")

rng = random.Random(20261125)
FIRST = ["PENELOPE", "NICK", "ED", "JENNIFER", "JOHNNY", "BETTE", "GRACE", "MATTHEW", "JOE", "CHRISTIAN",
         "ZERO", "KARL", "UMA", "VIVIEN", "CUBA", "FRED", "HELEN", "DAN", "BOB", "LUCILLE", "KIRSTEN", "ELVIS"]
LAST = ["GUINESS", "WAHLBERG", "CHASE", "DAVIS", "LOLLOBRIGIDA", "NICHOLSON", "MOSTEL", "JOHANSSON", "SWANK",
        "GABLE", "CAGE", "BERRY", "WOOD", "BERGEN", "OLIVIER", "COSTNER", "VOIGHT", "TORN", "FAWCETT", "TRACY"]
WORDS = ["ACADEMY", "DINOSAUR", "ACE", "GOLDFINGER", "ADAPTATION", "HOLES", "AFFAIR", "PREJUDICE", "AFRICAN",
         "EGG", "AGENT", "TRUMAN", "AIRPLANE", "SIERRA", "AIRPORT", "POLLOCK", "ALABAMA", "DEVIL", "ALADDIN",
         "CALENDAR", "ALAMO", "VIDEOTAPE", "ALASKA", "PHANTOM", "ALI", "FOREVER", "ALICE", "FANTASIA"]
CATEGORIES = ["Action", "Animation", "Children", "Classics", "Comedy", "Documentary", "Drama", "Family",
              "Foreign", "Games", "Horror", "Music", "New", "Sci-Fi", "Sports", "Travel"]
RATINGS = ["G", "PG", "PG-13", "R", "NC-17"]
BASE = datetime(2026, 2, 15, 5, 3, 42)


def ts(dt):
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def main():
    if os.path.exists(PATH):
        os.remove(PATH)
    db = sqlite3.connect(PATH)
    db.executescript("""
    create table language (language_id integer primary key, name char(20) not null, last_update timestamp not null);
    create table category (category_id integer primary key, name varchar(25) not null, last_update timestamp not null);
    create table actor (actor_id integer primary key, first_name varchar(45) not null, last_name varchar(45) not null,
                        last_update timestamp not null);
    create table film (film_id integer primary key, title varchar(255) not null, description text,
                       release_year integer, language_id integer not null, original_language_id integer,
                       rental_duration smallint not null, rental_rate decimal(4,2) not null, length smallint,
                       replacement_cost decimal(5,2) not null, rating varchar(5), special_features json,
                       last_update timestamp not null);
    create table film_actor (actor_id integer not null, film_id integer not null, last_update timestamp not null,
                             primary key (actor_id, film_id));
    create table film_category (film_id integer not null, category_id integer not null, last_update timestamp not null,
                                primary key (film_id, category_id));
    create table customer (customer_id integer primary key, first_name varchar(45) not null, last_name varchar(45) not null,
                           email varchar(50), active boolean not null, create_date date not null,
                           last_update timestamp);
    create table staff (staff_id integer primary key, first_name varchar(45) not null, last_name varchar(45) not null,
                        picture blob, active boolean not null, last_update timestamp not null);
    create table payment (payment_id integer primary key, customer_id integer not null, staff_id integer not null,
                          amount decimal(5,2) not null, payment_date timestamptz not null);
    """)
    db.execute("insert into language values (1, 'English', ?)", (ts(BASE),))
    db.execute("insert into language values (2, 'Italian', ?)", (ts(BASE),))
    for i, name in enumerate(CATEGORIES, 1):
        db.execute("insert into category values (?, ?, ?)", (i, name, ts(BASE)))
    for i in range(1, 201):
        db.execute("insert into actor values (?, ?, ?, ?)", (i, rng.choice(FIRST), rng.choice(LAST), ts(BASE)))
    for i in range(1, 1001):
        title = f"{rng.choice(WORDS)} {rng.choice(WORDS)}"
        features = json.dumps(rng.sample(["Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes"], rng.randint(1, 3)))
        db.execute(
            "insert into film values (?, ?, ?, 2006, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
            (i, title, f"A {rng.choice(['Epic', 'Touching', 'Fateful', 'Astounding'])} story of {title.title()}",
             2 if i % 10 == 0 else None, rng.randint(3, 7), rng.choice(["0.99", "2.99", "4.99"]),
             rng.randint(46, 185) if i % 50 else None, f"{rng.randint(9, 29)}.99", rng.choice(RATINGS), features,
             ts(BASE + timedelta(seconds=i))))
        db.execute("insert into film_category values (?, ?, ?)", (i, rng.randint(1, 16), ts(BASE)))
        for actor in sorted(rng.sample(range(1, 201), rng.randint(1, 5))):
            db.execute("insert into film_actor values (?, ?, ?)", (actor, i, ts(BASE)))
    for i in range(1, 600):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}@sakilacustomer.org" if i % 25 else None
        db.execute("insert into customer values (?, ?, ?, ?, ?, ?, ?)",
                   (i, first, last, email, 0 if i % 40 == 0 else 1,
                    (BASE - timedelta(days=rng.randint(0, 400))).strftime("%Y-%m-%d"), ts(BASE) if i % 7 else None))
    for i, (first, last) in enumerate([("Mike", "Hillyer"), ("Jon", "Stephens")], 1):
        picture = bytes(rng.randrange(256) for _ in range(64)) if i == 1 else None
        db.execute("insert into staff values (?, ?, ?, ?, 1, ?)", (i, first, last, picture, ts(BASE)))
    for i in range(1, 5001):
        when = BASE + timedelta(minutes=rng.randint(0, 60 * 24 * 90))
        db.execute("insert into payment values (?, ?, ?, ?, ?)",
                   (i, rng.randint(1, 599), rng.randint(1, 2), f"{rng.randint(0, 11)}.{rng.choice(['99', '98', '00'])}",
                    when.strftime("%Y-%m-%d %H:%M:%S+00:00")))
    db.commit()
    db.execute("vacuum")
    db.close()
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()

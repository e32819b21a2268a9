"""What the demo's people wrote: service titles, conversations, comments, compliments and
favors. Plain data, so that social.py reads as the shape of the marketplace.

`{a}` and `{b}` are the first names of a talk's two people (a wrote first), `{service}` the
title of the service the talk is about, `{owner}` the owner of a commented service. Titles
start without an article: the emails put them mid-sentence ("Bruno favorited ...").
"""

from __future__ import annotations

# (category, title, price in Simbi); one title per service, so no email lists one twice
SERVICES = (
    ("Lessons", "Beginner Spanish conversation", 40),
    ("Music", "Guitar lessons for beginners", 45),
    ("Home repair", "Fixing leaky taps and squeaky doors", 30),
    ("Cooking", "Homemade dumplings workshop", 35),
    ("Tech help", "Home Wi-Fi set-up", 30),
    ("Design", "Logo sketch with two revisions", 90),
    ("Wellness", "Morning yoga in the park", 20),
    ("Gardening", "Balcony garden planning", 30),
    ("Lessons", "Maths tutoring for teenagers", 50),
    ("Music", "Mixing and mastering your demo", 80),
    ("Home repair", "Flat-pack furniture assembly", 25),
    ("Cooking", "Weekly meal prep for two", 60),
    ("Tech help", "Website fixes in WordPress", 70),
    ("Design", "Portrait photo session", 75),
    ("Wellness", "Running plan for your first 10k", 25),
    ("Gardening", "Lawn mowing and hedge trimming", 35),
    ("Lessons", "Chess for beginners", 20),
    ("Music", "Piano for adults", 50),
    ("Home repair", "Painting one room", 120),
    ("Cooking", "Sourdough starter and a first loaf", 30),
    ("Tech help", "Phone and laptop clean-up", 25),
    ("Design", "Wedding invitation design", 85),
    ("Wellness", "Guided meditation", 15),
    ("Gardening", "Houseplant repotting", 20),
    ("Lessons", "Public speaking practice", 45),
    ("Music", "Singing warm-ups and breathing", 30),
    ("Home repair", "Hanging shelves and pictures", 30),
    ("Cooking", "Birthday cake baking", 55),
    ("Tech help", "Spreadsheet formulas explained", 35),
    ("Design", "CV layout and polish", 40),
    ("Wellness", "Posture check for desk workers", 25),
    ("Gardening", "Vegetable patch for beginners", 40),
    ("Lessons", "French grammar crash course", 45),
    ("Music", "Ukulele in an afternoon", 25),
    ("Cooking", "Vegan comfort food", 45),
    ("Tech help", "Smart home set-up", 60),
)

# One conversation per talk shape (social.SHAPES): who sends each message, in order.
CONVERSATIONS = (
    (
        ("a", 'Hi {b}! Is "{service}" still on offer? I could trade you an hour of help.'),
        ("b", "Hi {a}, yes it is! Saturday 10-12 & Sunday mornings both work for me."),
        ("b", "Oh, and tell me a little about what you need, so that I can prepare."),
    ),
    (
        ("a", "Hello {b}, I loved the photos on your page. Do you have time next week?"),
        ("b", "Thanks {a}! Tuesday or Thursday evening, whichever suits you."),
    ),
    (
        ("a", "Hey {b}, could we move Saturday's session to 11?"),
        ("b", "Sure, 11 is fine."),
        ("a", "Great, thank you!"),
        ("b", "See you then, {a}."),
    ),
)

COMMENTS = (
    "Is this available on weekends too?",
    "I tried this last month: {owner} was patient, quick and friendly. Recommended!",
    "Booked it as a present for my sister, she loved it.",
    "Could you do it for a group of four?",
)

COMPLIMENTS = (
    "Thank you for your time, it was fun and I learned a lot!",
    "Always on time and so friendly.",
    "Great work, my friends keep asking who helped me.",
    "",  # a compliment without words: the email says so without an empty quote
)

# A favor about one of the asked person's services, and one about anything else.
FAVORS_ABOUT_SERVICE = (
    "Would you have an hour for this next week? I am a complete beginner.",
    "My cousin would love this for her birthday on Saturday: could you fit her in?",
)
FAVORS = (
    "Could you help me carry a sofa up two floors on Sunday? It takes ten minutes.",
    "My Wi-Fi keeps dropping since I moved the router. Would you take a quick look?",
    "Could you water my balcony plants while I am away next week?",
)

SMS_REMINDER = "Simbi reminder: your session with {other} is tomorrow at 10:00."

# (reviewer's index in marketplace.PEOPLE, title of the service they paid for, rating, text):
# each reviewer reviews what economy.PAYMENTS has them pay for.
REVIEWS = (
    (0, "Guitar lessons for beginners", 5, "I played a whole song after two lessons."),
    (5, "Guitar lessons for beginners", 4, "Clear and patient; bring your own capo."),
    (2, "Painting one room", 5, "Tidy work, and the furniture was covered before anything."),
    (9, "Website fixes in WordPress", 4, "Fixed the contact form in twenty minutes."),
    (3, "Morning yoga in the park", 3, "Nice sessions, but it rained twice."),
    (6, "Homemade dumplings workshop", 5, "We folded sixty dumplings and ate most of them."),
)

# Bios, handed out in turn to the people who have one (economy.py). None has the word the
# demo searches for, so that the search finds services only.
BIOS = (
    "Teacher by day, amateur baker by night.",
    "I fix things and explain how I did it.",
    "New in town and keen to swap skills with neighbours.",
    "Retired engineer with a shed full of tools.",
    "Student who loves languages and long walks.",
)

# ruff: noqa: E501  (verbatim evidence quotes are long lines)
"""Build queries.jsonl from hand-written queries and verbatim evidence quotes.

Each query is written against one document; its relevance is given as the character spans of
evidence quotes (exact substrings of the document text, each occurring exactly once in it).
A chunk is relevant to a query when it overlaps one of the spans.

How the queries were chosen (see README.md): every document was split into five equal
character segments, and for each segment the annotator wrote one query about the FIRST
specific, checkable fact stated by a complete sentence that starts in that segment (skipping
only vague sentences with no checkable fact). Queries were written before any retrieval was
run. When the same fact is stated elsewhere in the document, that place is added as a further
span. `context_needed` is computed, not hand-labelled: it is true when no evidence span
contains the document's name or demonym (aliases below), i.e. the answer passage relies on
"it", "the state", "he", ... for its subject.

Run: python build_queries.py   (reads documents.jsonl, writes queries.jsonl)
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent

# lower-case substrings that name a document's subject (for the computed context_needed flag)
ALIASES = {
    "alabama": ["alabama"],
    "alaska": ["alaska"],
    "alberta": ["alberta"],
    "afghanistan": ["afghan"],
    "albania": ["albania"],
    "algeria": ["algeria"],
    "angola": ["angola"],
    "azerbaijan": ["azerbaijan", "azeri"],
    "andorra": ["andorra"],
    "aruba": ["aruba"],
    "apollo_8": ["apollo 8"],
    "apollo_11": ["apollo 11"],
    "albert_einstein": ["einstein"],
    "abraham_lincoln": ["lincoln"],
    "aristotle": ["aristotle", "aristotelian"],
    "arthur_schopenhauer": ["schopenhauer"],
    "andre_agassi": ["agassi"],
    "ayn_rand": ["rand"],
    "aldous_huxley": ["huxley"],
    "andrei_tarkovsky": ["tarkovsky"],
    "albert_sidney_johnston": ["johnston"],
    "aardvark": ["aardvark"],
    "aardwolf": ["aardwol"],
    "amphibian": ["amphibia"],
}

# (doc_id, style, query, [evidence quotes])   style: "question" | "keyword"
Q = [
    # ---------------------------------------------------------------- alabama
    (
        "alabama",
        "question",
        "Which states border Alabama?",
        [
            "It is bordered by Tennessee to the north, Georgia to the east, Florida and the Gulf of Mexico to the south, and Mississippi to the west."
        ],
    ),
    (
        "alabama",
        "keyword",
        "French name for the Alabama tribe and river",
        [
            "As early as 1702, the French called the tribe the Alibamon, with French maps identifying the river as Rivière des Alibamons."
        ],
    ),
    (
        "alabama",
        "question",
        "When did the Spanish garrison at Mobile, Alabama surrender to U.S. forces?",
        [
            "After the United States victory in the American Revolutionary War, the territory was divided between the United States and Spain. The latter retained control of this western territory from 1783 until the surrender of the Spanish garrison at Mobile to U.S. forces on April 13, 1813."
        ],
    ),
    (
        "alabama",
        "keyword",
        "Alabama population growth 1810 to 1830",
        [
            "Alabama had a population estimated at under 10,000 people in 1810, but it had increased to more than 300,000 people by 1830."
        ],
    ),
    (
        "alabama",
        "question",
        "What did the Blaine Amendment passed by the Alabama legislature prohibit?",
        [
            "They wrote another constitution in 1875, and the legislature passed the Blaine Amendment, prohibiting public money from being used to finance religious-affiliated schools."
        ],
    ),
    # ---------------------------------------------------------------- alaska
    (
        "alaska",
        "question",
        "Which Canadian provinces or territories border Alaska?",
        [
            "The Canadian administrative divisions of British Columbia and Yukon border the state to the east; it has a maritime border with Russia to the west across the Bering Strait.",
            "The state is bordered by Yukon and British Columbia in Canada, to the east, the Gulf of Alaska and the Pacific Ocean to the south, the Bering Sea, Bering Strait, and Chukchi Sea to the west and the Arctic Ocean to the north.",
        ],
    ),
    (
        "alaska",
        "keyword",
        "most populous region of Alaska",
        [
            "The most populous region of Alaska, containing Anchorage, the Matanuska-Susitna Valley and the Kenai Peninsula."
        ],
    ),
    (
        "alaska",
        "question",
        "Which volcano in Alaska is more symmetrical than Mount Fuji?",
        [
            "Unimak Island, for example, is home to Mount Shishaldin, which is an occasionally smoldering volcano that rises to 10000 ft above the North Pacific. It is the most perfect volcanic cone on Earth, even more symmetrical than Japan's Mount Fuji."
        ],
    ),
    (
        "alaska",
        "keyword",
        "annual precipitation in Juneau, Alaska",
        ["Juneau averages over 50 in of precipitation a year, and Ketchikan averages over 150 in."],
    ),
    (
        "alaska",
        "question",
        "When did the Tsimshian people come to Alaska?",
        [
            "The Tsimshian people came to Alaska from British Columbia in 1887, when President Grover Cleveland, and later the U.S. Congress, granted them permission to settle on Annette Island and found the town of Metlakatla."
        ],
    ),
    # ---------------------------------------------------------------- alberta
    (
        "alberta",
        "question",
        "What is the population of Alberta?",
        [
            "With an estimated population of 4,196,457 as of July 1, 2015, it is Canada's fourth-most populous province and the most populous of Canada's three prairie provinces."
        ],
    ),
    (
        "alberta",
        "keyword",
        "longest river in Alberta",
        [
            "The longest river in the province is the Athabasca River which travels 1538 km from the Columbia Icefield in the Rocky Mountains to Lake Athabasca."
        ],
    ),
    (
        "alberta",
        "question",
        "How do the Rocky Mountains affect precipitation in Alberta?",
        [
            "The climate is also influenced by the presence of the Rocky Mountains to the southwest, which disrupt the flow of the prevailing westerly winds and cause them to drop most of their moisture on the western slopes of the mountain ranges before reaching the province, casting a rain shadow over much of Alberta."
        ],
    ),
    (
        "alberta",
        "question",
        "Which part of Alberta has the highest frequency of hail in Canada?",
        [
            "The region surrounding the Calgary–Edmonton Corridor is notable for having the highest frequency of hail in Canada, which is caused by orographic lifting from the nearby Rocky Mountains, enhancing the updraft/downdraft cycle necessary for the formation of hail."
        ],
    ),
    (
        "alberta",
        "keyword",
        "Alberta provincial fish",
        ["Bull trout, native to the province, is the Alberta's provincial fish."],
    ),
    # ---------------------------------------------------------------- afghanistan
    (
        "afghanistan",
        "question",
        "What is the population of Afghanistan?",
        ["It has a population of approximately 32 million, making it the 42nd most populous country in the world."],
    ),
    (
        "afghanistan",
        "question",
        "When did urban civilization begin in Afghanistan?",
        [
            "Urban civilization is believed to have begun as early as 3000 BCE, and the early city of Mundigak (near Kandahar in the south of the country) may have been a colony of the nearby Indus Valley Civilization."
        ],
    ),
    (
        "afghanistan",
        "question",
        "Who overthrew the Kushan Empire that was centered in Afghanistan?",
        [
            "The Kushans were overthrown by the Sassanids in the 3rd century CE, though the Indo-Sassanids continued to rule at least parts of the region."
        ],
    ),
    (
        "afghanistan",
        "keyword",
        "Afghan Hotak dynasty ousted from Persia",
        ["The Afghan dynasty was ousted from Persia by Nader Shah after the 1729 Battle of Damghan."],
    ),
    (
        "afghanistan",
        "question",
        "Who was a key force behind King Amanullah Khan's modernizing reforms in Afghanistan?",
        ["A key force behind these reforms was Mahmud Tarzi, an ardent supporter of the education of women."],
    ),
    # ---------------------------------------------------------------- albania
    (
        "albania",
        "question",
        "Which countries border Albania?",
        [
            "It is bordered by Montenegro to the northwest, Kosovo to the northeast, the Republic of Macedonia to the east, and Greece to the south and southeast."
        ],
    ),
    (
        "albania",
        "question",
        "What did Albanians call their country during the Middle Ages?",
        [
            "During the Middle Ages, the Albanians called their country Arbëri or Arbëni and referred to themselves as Arbëresh or Arbënesh."
        ],
    ),
    (
        "albania",
        "question",
        "Who founded the first Albanian state and when?",
        [
            "The Principality of Arbër or Albanon (Albanian): Arbër or Arbëria, was the first Albanian state during the Middle Ages, it was established by archon Progon in the region of Kruja, in c. 1190."
        ],
    ),
    (
        "albania",
        "keyword",
        "emigration of Albanians after conversion to Islam under the Ottomans",
        [
            "With the arrival of the Turks, Islam was introduced in Albania as a third religion. This conversion caused a massive emigration of Albanians to the Christian European countries."
        ],
    ),
    (
        "albania",
        "question",
        "What did the Kararname decree of the League of Prizren proclaim?",
        [
            'The League issued a decree known as Kararname. Its text contained a proclamation that the people from "northern Albania, Epirus and Bosnia" are willing to defend the "territorial integrity" of the Ottoman Empire "by all possible means" from the troops of the Bulgaria, Serbia and Montenegro.'
        ],
    ),
    # ---------------------------------------------------------------- algeria
    (
        "algeria",
        "question",
        "What is the capital of Algeria?",
        ["Its capital and most populous city is Algiers, located in the country's far north."],
    ),
    (
        "algeria",
        "keyword",
        "Neolithic civilization in Algeria dates",
        [
            "Neolithic civilization (animal domestication and agriculture) developed in the Saharan and Mediterranean Maghreb perhaps as early as 11,000 BC or as late as between 6000 and 2000 BC."
        ],
    ),
    (
        "algeria",
        "question",
        "When did the Arabs conquer Algeria?",
        [
            "After negligible resistance from the locals, the Arabs conquered Algeria in the mid-7th century and a large number of the indigenous people converted to the new faith."
        ],
    ),
    (
        "algeria",
        "question",
        "What did the merchants of Algiers cede to Spain in 1510?",
        [
            "In the same year, few merchants of Algiers ceded one of the rocky islets in their harbor to Spain, which built a fort on it."
        ],
    ),
    (
        "algeria",
        "question",
        "How long were the terms of the Ottoman pashas who governed Algeria?",
        [
            "Subsequently, with the institution of a regular Ottoman administration, governors with the title of pasha ruled for three-year terms."
        ],
    ),
    # ---------------------------------------------------------------- angola
    (
        "angola",
        "keyword",
        "Angola size rank among African countries",
        [
            "It is the seventh-largest country in Africa, and is bordered by Namibia to the south, the Democratic Republic of the Congo to the north and east, Zambia to the east, and the Atlantic Ocean to west."
        ],
    ),
    (
        "angola",
        "question",
        "With whom did the Kingdom of the Kongo in Angola trade?",
        [
            "It established trade routes with other trading cities and civilisations up and down the coast of southwestern and West Africa and even with the Great Zimbabwe Mutapa Empire, but engaged in little or no transoceanic trade."
        ],
    ),
    (
        "angola",
        "question",
        "When did Portugal establish full administrative control over the hinterland of Angola?",
        [
            "Full Portuguese administrative control of the hinterland did not establish itself until the beginning of the 20th century.",
            "As a Portuguese colony, Angola did not encompass its present borders until the early 20th century, following resistance by groups such as the Cuamato, the Kwanyama and the Mbunda.",
        ],
    ),
    (
        "angola",
        "question",
        "Who became the first president of Angola?",
        [
            "With Cuban support, the MPLA held Luanda and declared independence on 11 November 1975, with Agostinho Neto becoming the first president, though the civil war continued."
        ],
    ),
    (
        "angola",
        "keyword",
        "Angola national motto",
        ['Angola\'s motto is Virtus Unita Fortior, a Latin phrase meaning "Virtue is stronger when united".'],
    ),
    # ---------------------------------------------------------------- azerbaijan
    (
        "azerbaijan",
        "question",
        "What are the borders of Azerbaijan?",
        [
            "It is bounded by the Caspian Sea to the east, Russia to the north, Georgia to the northwest, Armenia to the west and Iran to the south."
        ],
    ),
    (
        "azerbaijan",
        "question",
        "Which Zoroastrian text mentions the holy Atropatene, the origin of the name Azerbaijan?",
        [
            'The original etymology of this name is thought to have its roots in the once-dominant Zoroastrian religion. In the Avesta, Frawardin Yasht ("Hymn to the Guardian Angels"), there is a mention of âterepâtahe ashaonô fravashîm ýazamaide, which literally translates from Avestan as "we worship the Fravashi of the holy Atropatene."'
        ],
    ),
    (
        "azerbaijan",
        "question",
        "Until when did Caucasian Albania remain an entity under Sassanid rule?",
        [
            "Despite Sassanid rule, Albania remained an entity in the region until the 9th century, while fully subordinate to Sassanid Persia, and retained its monarchy."
        ],
    ),
    (
        "azerbaijan",
        "keyword",
        "Ottoman occupations of Azerbaijan during the Safavid era",
        [
            "Despite efforts of the Safavids, the Ottomans briefly managed to occupy swaths of present-day Azerbaijan twice over the centuries."
        ],
    ),
    (
        "azerbaijan",
        "question",
        "Are there more ethnic Azerbaijanis in Iran or in Azerbaijan?",
        ["Furthermore, the number of ethnic Azerbaijanis in Iran far outnumber those in neighbouring Azerbaijan."],
    ),
    # ---------------------------------------------------------------- andorra
    (
        "andorra",
        "question",
        "When was the Principality of Andorra formed?",
        [
            "Created under a charter in A.D. 988, the present Principality was formed in A.D. 1278.",
            "The conflict was resolved in 1278 with the mediation of Aragon by the signing of the first paréage which provided that Andorra's sovereignty be shared between the count of Foix (whose title would ultimately transfer to the French head of state) and the Bishop of Urgell, in Catalonia. This gave the principality its territory and political form.",
        ],
    ),
    (
        "andorra",
        "question",
        "Who signed the 1095 declaration of co-sovereignty over Andorra?",
        [
            "In 1095 the Lord of Caboet and the Bishop of Urgell signed under oath a declaration of their co-sovereignty over Andorra."
        ],
    ),
    (
        "andorra",
        "question",
        "Why is the President of France a monarch of Andorra?",
        [
            "This peculiarity makes the President of France, in his capacity as Prince of Andorra, an elected reigning monarch, although he is not elected by a popular vote of the Andorran people.",
            "It is known as a principality as it is a monarchy headed by two Co-Princes – the Spanish/Roman Catholic Bishop of Urgell and the President of France.",
        ],
    ),
    (
        "andorra",
        "keyword",
        "term length of judges on Andorra's High Court of Justice",
        [
            "It is presided over by the member appointed by the Syndic General and the judges hold office for six-year terms."
        ],
    ),
    (
        "andorra",
        "question",
        "How was the Andorran Army organized after its reform in 1934?",
        [
            "The Andorran Army was reformed in the following year, with eleven soldiers appointed to supervisory roles. The force consisted of six Corporals, one for each parish (although there are currently seven parishes, there were only six until 1978), plus four junior staff officers to co-ordinate action, and a commander with the rank of Major."
        ],
    ),
    # ---------------------------------------------------------------- aruba
    (
        "aruba",
        "question",
        "How long and how wide is the island of Aruba?",
        ["It measures 32 km long from its northwestern to its southeastern end and 10 km across at its widest point."],
    ),
    (
        "aruba",
        "question",
        "When was Aruba administered by the Dutch West India Company?",
        [
            'The island was included under the Dutch West India Company (W.I.C.) administration, as "New Netherland and Curaçao", from 1648 to 1664.'
        ],
    ),
    (
        "aruba",
        "keyword",
        "Aruba beaches and tourist development location",
        [
            "It has white sandy beaches on the western and southern coasts of the island, relatively sheltered from fierce ocean currents. This is where most tourist development has occurred."
        ],
    ),
    (
        "aruba",
        "question",
        "What residency limit did Aruba's 2007 immigration laws set for foreign workers?",
        [
            "In 2007, new immigration laws were introduced to help control the growth of the population by restricting foreign workers to a maximum of three years residency on the island."
        ],
    ),
    (
        "aruba",
        "question",
        "What is the legal system of Aruba based on?",
        ["The Aruban legal system is based on the Dutch model."],
    ),
    # ---------------------------------------------------------------- apollo_8
    (
        "apollo_8",
        "question",
        "When was Apollo 8 launched?",
        [
            "Apollo 8, the second human spaceflight mission in the United States Apollo space program, was launched on December 21, 1968, and became the first manned spacecraft to leave Earth orbit, reach the Earth's Moon, orbit it and return safely to Earth.",
            "Apollo 8 launched at 7:51:00 a.m. Eastern Standard Time on December 21, 1968, using the Saturn V's three stages to achieve Earth orbit.",
        ],
    ),
    (
        "apollo_8",
        "question",
        "Who replaced Aldrin as backup Lunar Module Pilot for Apollo 8?",
        [
            "When Lovell was rotated to the prime crew, no one with experience on CSM-103 (the specific spacecraft used for the mission) was available, so Aldrin was moved to CMP and Fred Haise brought in as backup LMP."
        ],
    ),
    (
        "apollo_8",
        "question",
        "What could NASA test early by sending Apollo 8 to the Moon instead of repeating Apollo 7?",
        [
            'The new mission would also allow NASA to test lunar landing procedures that would otherwise have to wait until Apollo 10, the scheduled "F" mission.'
        ],
    ),
    (
        "apollo_8",
        "keyword",
        "Apollo 6 Saturn V problems pogo oscillation engine failures before Apollo 8",
        [
            "Apollo 6 had suffered several major problems during its April 1968 flight, including severe pogo oscillation during its first stage, two second stage engine failures, and a third stage that failed to reignite in orbit."
        ],
    ),
    (
        "apollo_8",
        "question",
        "How long did Apollo 8 spend in its Earth parking orbit?",
        [
            "Propellant venting increased the apogee by 6.4 nmi over the 2 hours, 44 minutes and 30 seconds spent in the parking orbit."
        ],
    ),
    # ---------------------------------------------------------------- apollo_11
    (
        "apollo_11",
        "question",
        "When did Apollo 11 land on the Moon?",
        [
            "Americans Neil Armstrong and Buzz Aldrin landed on July 20, 1969, at 20:18 UTC ( years ago).",
            "Armstrong took semi-automatic control and, with Aldrin calling out altitude and velocity data, landed at 20:17:40 UTC on Sunday July 20 with about 25 seconds of fuel left.",
        ],
    ),
    (
        "apollo_11",
        "keyword",
        "Apollo 11 support crew CAPCOMs",
        [
            "Support crew\nCharlie Duke, Capsule Communicator (CAPCOM)\nRonald Evans (CAPCOM)\nOwen K. Garriott (CAPCOM)\nDon L. Lind (CAPCOM)\nKen Mattingly (CAPCOM)\nBruce McCandless II (CAPCOM)\nHarrison Schmitt (CAPCOM)"
        ],
    ),
    (
        "apollo_11",
        "question",
        "How long after launch did Apollo 11 reach Earth orbit?",
        [
            "A Saturn V launched Apollo 11 from Launch Pad 39A, part of the Launch Complex 39 site at the Kennedy Space Center on July 16, 1969 at 13:32:00 UTC (9:32:00 a.m. EDT local time). It entered Earth orbit, at an altitude of 100.4 nmi by 98.9 nmi, twelve minutes later."
        ],
    ),
    (
        "apollo_11",
        "question",
        "What did Aldrin say when the Apollo 11 lunar module's probes touched the surface?",
        [
            'A few moments before the landing, a light informed Aldrin that at least one of the 67 in probes hanging from Eagle footpads had touched the surface, and he said "Contact light!"'
        ],
    ),
    (
        "apollo_11",
        "question",
        "At what time did Armstrong open the hatch of the Apollo 11 lunar module?",
        [
            "At 02:39 UTC on Monday July 21, 1969, Armstrong opened the hatch, and at 02:51 UTC began his descent to the lunar surface."
        ],
    ),
    # ---------------------------------------------------------------- albert_einstein
    (
        "albert_einstein",
        "question",
        "When was Albert Einstein born?",
        [
            "Albert Einstein (; 14 March 1879 – 18 April 1955) was a German-born theoretical physicist.",
            "Albert Einstein was born in Ulm, in the Kingdom of Württemberg in the German Empire on 14 March 1879.",
        ],
    ),
    (
        "albert_einstein",
        "question",
        "What kind of elementary school did Einstein attend?",
        [
            "The Einsteins were non-observant Ashkenazi Jews, and Albert attended a Catholic elementary school from the age of 5 for three years."
        ],
    ),
    (
        "albert_einstein",
        "question",
        "Did Mileva Marić contribute to Einstein's 1905 papers?",
        [
            "There have been claims that Marić collaborated with Einstein on his celebrated 1905 papers, but historians of physics who have studied the issue find no evidence that she made any substantive contributions."
        ],
    ),
    (
        "albert_einstein",
        "keyword",
        "Einstein Olympia Academy discussion group in Bern",
        [
            'With a few friends he had met in Bern, Einstein started a small discussion group, self-mockingly named "The Olympia Academy", which met regularly to discuss science and philosophy.'
        ],
    ),
    (
        "albert_einstein",
        "question",
        "What was Einstein awarded the Nobel Prize in Physics for?",
        [
            'In 1921, Einstein was awarded the Nobel Prize in Physics "for his services to Theoretical Physics, and especially for his discovery of the law of the photoelectric effect".',
            'He received the 1921 Nobel Prize in Physics for his "services to theoretical physics", in particular his discovery of the law of the photoelectric effect, a pivotal step in the evolution of quantum theory.',
        ],
    ),
    # ---------------------------------------------------------------- abraham_lincoln
    (
        "abraham_lincoln",
        "keyword",
        "Abraham Lincoln presidency dates",
        [
            "Abraham Lincoln (February 12, 1809 – April 15, 1865) was the 16th President of the United States, serving from March 1861 until his assassination in April 1865."
        ],
    ),
    (
        "abraham_lincoln",
        "question",
        "Which general finally captured Richmond for Lincoln?",
        [
            "Lincoln tried repeatedly to capture the Confederate capital at Richmond; each time a general failed, Lincoln substituted another, until finally Grant succeeded."
        ],
    ),
    (
        "abraham_lincoln",
        "question",
        "Why did Abraham Lincoln's family leave the Sinking Spring farm?",
        [
            "Thomas Lincoln bought or leased several farms in Kentucky, including the Sinking Spring farm, where Abraham was born; however, a land title dispute soon forced the Lincolns to move."
        ],
    ),
    (
        "abraham_lincoln",
        "question",
        "How much formal schooling did Abraham Lincoln have?",
        [
            "His formal schooling from several itinerant teachers was intermittent, the aggregate of which may have amounted to less than a year; however, he was an avid reader and retained a lifelong interest in learning."
        ],
    ),
    (
        "abraham_lincoln",
        "question",
        "When did Abraham Lincoln marry Mary Todd?",
        [
            "They later met again at a party and married on November 4, 1842, in the Springfield mansion of Mary's married sister."
        ],
    ),
    # ---------------------------------------------------------------- aristotle
    (
        "aristotle",
        "question",
        "Where was Aristotle born?",
        [
            "Aristotle (, Aristotélēs; 384–322 BC) was a Greek philosopher and scientist born in the city of Stagira, Chalkidice, on the northern periphery of Classical Greece.",
            'Aristotle, whose name means "the best purpose", was born in 384 BC in Stagira, Chalcidice, about 55 km (34 miles) east of modern-day Thessaloniki.',
        ],
    ),
    (
        "aristotle",
        "question",
        "How long did Aristotle stay at Plato's Academy?",
        [
            "At about the age of eighteen, Aristotle moved to Athens to continue his education at Plato's Academy. He remained there for nearly twenty years before leaving Athens in 348/47 BC.",
            "At eighteen, he joined Plato's Academy in Athens and remained there until the age of thirty-seven (c. 347 BC).",
        ],
    ),
    (
        "aristotle",
        "question",
        "Why did Aristotle flee Athens for Chalcis?",
        [
            "Following Alexander's death, anti-Macedonian sentiment in Athens was rekindled. In 322 BC, Demophilus and Eurymedon the Hierophant reportedly denounced Aristotle for impiety, prompting him to flee to his mother's family estate in Chalcis"
        ],
    ),
    (
        "aristotle",
        "keyword",
        "core treatises of Aristotle's logic in the Organon",
        [
            "The first three treatises form the core of the logical theory stricto sensu: the grammar of the language of logic and the correct rules of reasoning.",
            "The logical works of Aristotle were compiled into six books in about the early 1st century CE:\nCategories\nOn Interpretation\nPrior Analytics",
        ],
    ),
    (
        "aristotle",
        "question",
        "Did Aristotle make original contributions to mathematics?",
        [
            "Aristotle's metaphysics contains observations on the nature of numbers but he made no original contributions to mathematics."
        ],
    ),
    # ---------------------------------------------------------------- arthur_schopenhauer
    (
        "arthur_schopenhauer",
        "question",
        "When was Arthur Schopenhauer born?",
        [
            "Arthur Schopenhauer (22 February 1788 – 21 September 1860) was a German philosopher.",
            "Schopenhauer was born on 22 February 1788, in the city of Danzig",
        ],
    ),
    (
        "arthur_schopenhauer",
        "question",
        "What did Schopenhauer's mother say about his first book?",
        [
            "His mother informed him that the book was incomprehensible and it was unlikely that anyone would ever buy a copy."
        ],
    ),
    (
        "arthur_schopenhauer",
        "question",
        "Why did Schopenhauer leave Berlin in 1831?",
        ["In 1831, a cholera epidemic broke out in Berlin and Schopenhauer left the city."],
    ),
    (
        "arthur_schopenhauer",
        "keyword",
        "Schopenhauer art as consequence of aesthetic contemplation",
        [
            "Art is the practical consequence of this brief aesthetic contemplation as it attempts to depict one's immersion with the world, thus tries to depict the essence/pure ideas of the world."
        ],
    ),
    (
        "arthur_schopenhauer",
        "question",
        "According to Schopenhauer, why does the State punish criminals?",
        [
            'The State, Schopenhauer claimed, punishes criminals to prevent future crimes. It does so by placing "beside every possible motive for committing a wrong a more powerful motive for leaving it undone, in the inescapable punishment.'
        ],
    ),
    # ---------------------------------------------------------------- andre_agassi
    (
        "andre_agassi",
        "question",
        "When was Andre Agassi born?",
        [
            "Andre Kirk Agassi (born April 29, 1970) is an American retired professional tennis player and former World No. 1, who was one of the game's most dominant players from the early 1990s to the mid-2000s."
        ],
    ),
    (
        "andre_agassi",
        "question",
        "What illness did Andre Agassi's mother survive?",
        ["Andre Agassi's mother, Betty, is a breast cancer survivor."],
    ),
    (
        "andre_agassi",
        "question",
        "Which Grand Slam semi-finals did Agassi reach as a teenager?",
        [
            "While still a teenager, he reached the semi-finals of both the French Open and the US Open in 1988 and made the US Open semi-finals in 1989."
        ],
    ),
    (
        "andre_agassi",
        "keyword",
        "Agassi shaved head image is everything",
        ['In 1995, Agassi shaved his balding head, breaking with his old "image is everything" style.'],
    ),
    (
        "andre_agassi",
        "question",
        "How far did Andre Agassi climb in the rankings in 1998?",
        [
            "In 1998, Agassi won five titles and leapt from world no. 110 to no. 6, the highest jump into the top 10 made by any player during a calendar year."
        ],
    ),
    # ---------------------------------------------------------------- ayn_rand
    (
        "ayn_rand",
        "question",
        "What was Ayn Rand's birth name?",
        [
            "Ayn Rand (born Alisa Zinov'yevna Rosenbaum,; – March 6, 1982) was a Russian-born American novelist, philosopher, playwright, and screenwriter.",
            "Rand was born Alisa Zinov'yevna Rosenbaum on February 2, 1905, to a Russian Jewish bourgeois family living in Saint Petersburg.",
        ],
    ),
    (
        "ayn_rand",
        "question",
        "Where did Ayn Rand go after graduating from high school in the Crimea?",
        [
            "After graduating from high school in the Crimea at 16, Rand returned with her family to Petrograd (as Saint Petersburg was renamed at that time), where they faced desperate conditions, on occasion nearly starving."
        ],
    ),
    (
        "ayn_rand",
        "question",
        "When was Ayn Rand's play Night of January 16th on Broadway?",
        [
            "This was followed by the courtroom drama Night of January 16th, first produced by E.E. Clive in Hollywood in 1934 and then successfully reopened on Broadway in 1935.",
            "She had a play produced on Broadway in 1935–1936.",
        ],
    ),
    (
        "ayn_rand",
        "keyword",
        "Ayn Rand friendship with Isabel Paterson",
        ["Rand also developed a friendship with libertarian writer Isabel Paterson."],
    ),
    (
        "ayn_rand",
        "question",
        "How did Ayn Rand judge the effectiveness of the HUAC investigations?",
        [
            'When asked after the hearings about her feelings on the effectiveness of the investigations, Rand described the process as "futile".'
        ],
    ),
    # ---------------------------------------------------------------- aldous_huxley
    (
        "aldous_huxley",
        "question",
        "When was Aldous Huxley born?",
        [
            "Aldous Leonard Huxley (26 July 1894 – 22 November 1963) was an English writer, novelist, philosopher, and prominent member of the Huxley family.",
            "Aldous Huxley was born in Godalming, Surrey, England, in 1894.",
        ],
    ),
    (
        "aldous_huxley",
        "question",
        "Which future famous writer did Aldous Huxley teach at Eton?",
        [
            "He taught French for a year at Eton, where Eric Blair (who was to take the pen name George Orwell) and Steven Runciman were among his pupils."
        ],
    ),
    (
        "aldous_huxley",
        "question",
        "Which Hindu swami's Vedanta circle did Aldous Huxley join?",
        [
            "He also became a Vedantist in the circle of Hindu Swami Prabhavananda, and introduced Christopher Isherwood to this circle.",
            "Beginning in 1939 and continuing until his death in 1963, Huxley had an extensive association with the Vedanta Society of Southern California, founded and headed by Swami Prabhavananda.",
        ],
    ),
    (
        "aldous_huxley",
        "question",
        "Why was Aldous Huxley's application for US citizenship deferred?",
        [
            "His application was continuously deferred on the grounds that he would not say he would take up arms to defend the U.S. He claimed a philosophical, rather than a religious objection, and therefore was not exempt under the McCarran Act."
        ],
    ),
    (
        "aldous_huxley",
        "keyword",
        "Huxley 1952 Hollywood banquet speech learned by heart eyesight",
        [
            "For example, some ten years after publication of The Art of Seeing, in 1952, Bennett Cerf was present when Huxley spoke at a Hollywood banquet, wearing no glasses and apparently reading his paper from the lectern without difficulty: \"Then suddenly he faltered — and the disturbing truth became obvious. He wasn't reading his address at all. He had learned it by heart."
        ],
    ),
    # ---------------------------------------------------------------- andrei_tarkovsky
    (
        "andrei_tarkovsky",
        "question",
        "When did Andrei Tarkovsky die?",
        [
            "Andrei Arsenyevich Tarkovsky (4 April 1932 – 29 December 1986) was a Soviet and Russian film-maker, writer, film editor, film theorist, theatre and opera director.",
            "Tarkovsky died in Paris on 29 December 1986.",
        ],
    ),
    (
        "andrei_tarkovsky",
        "question",
        "Who was Andrei Tarkovsky's first wife?",
        [
            "He was in the same class as Irma Raush whom he married in April 1957.",
            "He divorced his wife, Irma Raush, in June 1970.",
        ],
    ),
    (
        "andrei_tarkovsky",
        "question",
        "Whom did Tarkovsky marry in 1970?",
        [
            "He divorced his wife, Irma Raush, in June 1970. In the same year, he married Larissa Kizilova (née Egorkina), who had been a production assistant for the film Andrei Rublev (they had been living together since 1965)."
        ],
    ),
    (
        "andrei_tarkovsky",
        "keyword",
        "Tarkovsky unfinished film The First Day setting and cast",
        [
            "The film was set in 18th-century Russia during the reign of Peter the Great and starred Natalya Bondarchuk and Anatoli Papanov."
        ],
    ),
    (
        "andrei_tarkovsky",
        "question",
        "Was Andrei Tarkovsky assassinated by the KGB?",
        [
            "A controversy emerged in Russia in the early 1990s when it was alleged that Tarkovsky did not die of natural causes but was assassinated by the KGB. Evidence for this hypothesis includes testimonies by former KGB agents who claim that Viktor Chebrikov gave the order to eradicate Tarkovsky to curtail what the Soviet government and the KGB saw as anti-Soviet propaganda by Tarkovsky."
        ],
    ),
    # ---------------------------------------------------------------- albert_sidney_johnston
    (
        "albert_sidney_johnston",
        "question",
        "In which armies did Albert Sidney Johnston serve as a general?",
        [
            "Albert Sidney Johnston (February 2, 1803 – April 6, 1862) served as a general in three different armies: the Texian (i.e., Republic of Texas) Army, the United States Army, and the Confederate States Army."
        ],
    ),
    (
        "albert_sidney_johnston",
        "question",
        "Who appointed Albert Sidney Johnston Secretary of War of the Republic of Texas?",
        [
            "On December 22, 1838, Mirabeau B. Lamar, the second president of the Republic of Texas, appointed Johnston as Secretary of War."
        ],
    ),
    (
        "albert_sidney_johnston",
        "question",
        "How did Jefferson Davis plan to defend Confederate territory early in the Civil War?",
        [
            "Early in the Civil War, Confederate President Jefferson Davis decided that the Confederacy would attempt to hold as much of its territory as possible, and therefore distributed military forces around its borders and coasts. In the summer of 1861, Davis appointed several generals to defend Confederate lines from the Mississippi River east to the Allegheny Mountains."
        ],
    ),
    (
        "albert_sidney_johnston",
        "question",
        "Who held Eastern Tennessee for the Confederacy before the Battle of Mill Springs?",
        [
            "Eastern Tennessee was held for the Confederacy by two unimpressive brigadier generals appointed by Jefferson Davis: Felix Zollicoffer, a brave but untrained and inexperienced officer' and soon-to-be Maj. Gen. George B. Crittenden, a former U.S. Army officer with apparent alcohol problems."
        ],
    ),
    (
        "albert_sidney_johnston",
        "keyword",
        "Polk ignored problems of Fort Henry and Fort Donelson, engineer inspection",
        [
            "Maj. Gen. Polk ignored the problems of the forts when he took command. After Johnston took command, Polk at first refused to comply with Johnston's order to send an engineer, Lt. Joseph K. Dixon, to inspect the forts."
        ],
    ),
    # ---------------------------------------------------------------- aardvark
    (
        "aardvark",
        "question",
        "What is the scientific name of the aardvark?",
        ["The aardvark (Orycteropus afer) is a medium-sized, burrowing, nocturnal mammal native to Africa."],
    ),
    (
        "aardvark",
        "question",
        "How many subspecies does the aardvark have?",
        ["The aardvark has seventeen poorly defined subspecies listed:"],
    ),
    (
        "aardvark",
        "keyword",
        "number of molars in adult aardvark jaw",
        ["The teeth consist of 14 upper and 12 lower jaw molars."],
    ),
    (
        "aardvark",
        "question",
        "How do aardvarks defend themselves against predators?",
        [
            "Aardvarks can dig fast or run in zigzag fashion to elude enemies, but if all else fails, they will strike with their claws, tail and shoulders, sometimes flipping onto their backs lying motionless except to lash out with all four feet. They are capable of causing substantial damage to unprotected areas of an attacker."
        ],
    ),
    (
        "aardvark",
        "question",
        "What sounds does an aardvark make?",
        [
            "The aardvark is a rather quiet animal. However, it does make soft grunting sounds as it forages and loud grunts as it makes for its tunnel entrance. It makes a bleating sound if frightened."
        ],
    ),
    # ---------------------------------------------------------------- aardwolf
    (
        "aardwolf",
        "question",
        "What is the scientific name of the aardwolf?",
        ["The aardwolf (Proteles cristata) is a small, insectivorous mammal, native to East and Southern Africa."],
    ),
    (
        "aardwolf",
        "question",
        "Which marking found in other hyenas is the aardwolf missing?",
        ["It is missing the throat spot that others in the family have."],
    ),
    (
        "aardwolf",
        "question",
        "How far do aardwolves chase intruders from their territory?",
        ["If their territory is infringed upon, they will chase the intruder up to 400 m or to the border."],
    ),
    (
        "aardwolf",
        "keyword",
        "how the aardwolf locates termites",
        ["They locate their food by sound and also from the scent secreted by the soldier termites."],
    ),
    (
        "aardwolf",
        "question",
        "How do dominant male aardwolves behave in the breeding season?",
        [
            "Dominant males will also mate opportunistically with the females of less dominant neighboring aardwolves, which can result in conflict between rival males."
        ],
    ),
    # ---------------------------------------------------------------- amphibian
    (
        "amphibian",
        "question",
        "Which class of vertebrates do amphibians belong to?",
        [
            "Amphibians are ectothermic, tetrapod vertebrates of the class Amphibia.",
            "Traditionally, the class Amphibia includes all tetrapod vertebrates that are not amniotes.",
        ],
    ),
    (
        "amphibian",
        "keyword",
        "two main classification systems for amphibian species",
        [
            'The two most common systems are the classification adopted by the website AmphibiaWeb, University of California, Berkeley and the classification by herpetologist Darrel Frost and the American Museum of Natural History, available as the online reference database "Amphibian Species of the World".'
        ],
    ),
    (
        "amphibian",
        "question",
        "What does the amphibian superorder Salientia include?",
        [
            "Furthermore, Salientia includes all three recent orders plus the Triassic proto-frog, Triadobatrachus.",
            "Salientia (frogs, toads and relatives): Jurassic to present—6,200 current species in 53 families",
            "Authorities disagree as to whether Salientia is a superorder that includes the order Anura, or whether Anura is a sub-order of the order Salientia.",
        ],
    ),
    (
        "amphibian",
        "question",
        "How large were Carboniferous amphibians and what did they prey on?",
        [
            "They were the top land predators, sometimes reaching several metres in length, preying on the large insects of the period and the many types of fish in the water."
        ],
    ),
    (
        "amphibian",
        "question",
        "How did amphibian skin adapt to life on land?",
        [
            "Their skins were exposed to harmful ultraviolet rays that had previously been absorbed by the water. The skin changed to become more protective and prevent excessive water loss."
        ],
    ),
]


def main():
    docs = {}
    with (HERE / "documents.jsonl").open(encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            docs[d["id"]] = d
    out, problems = [], []
    per_doc = {}
    for doc_id, style, query, quotes in Q:
        text = docs[doc_id]["text"]
        spans = []
        for qt in quotes:
            n = text.count(qt)
            if n != 1:
                problems.append(f"{doc_id}: quote found {n} times: {qt[:80]!r}")
                continue
            s = text.index(qt)
            spans.append([s, s + len(qt)])
        per_doc[doc_id] = per_doc.get(doc_id, 0) + 1
        qid = f"{doc_id}-{per_doc[doc_id]}"
        ctx = not any(a in text[s:e].lower() for s, e in spans for a in ALIASES[doc_id])
        out.append(
            {
                "id": qid,
                "query": query,
                "doc_id": doc_id,
                "spans": sorted(spans),
                "style": style,
                "context_needed": ctx,
                "evidence": [text[s:e] for s, e in sorted(spans)],
            }
        )
    if problems:
        raise SystemExit("\n".join(problems))
    with (HERE / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q in out:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    n_ctx = sum(q["context_needed"] for q in out)
    n_kw = sum(q["style"] == "keyword" for q in out)
    print(
        f"{len(out)} queries over {len(per_doc)} documents; context_needed={n_ctx}, "
        f"self_contained={len(out) - n_ctx}; keyword-style={n_kw}"
    )


if __name__ == "__main__":
    main()

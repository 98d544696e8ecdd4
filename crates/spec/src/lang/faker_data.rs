//! Word lists behind the faker-style template helpers.
//!
//! Every entry is plain ASCII without `"` or `\`, so a rendered value can sit inside a JSON
//! string in a template without escaping.

/// Given names for `name.firstName`.
pub(super) static FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Daniel",
    "Nancy",
    "Matthew",
    "Lisa",
    "Anthony",
    "Betty",
    "Mark",
    "Margaret",
    "Donald",
    "Sandra",
    "Steven",
    "Ashley",
    "Paul",
    "Emily",
    "Andrew",
    "Donna",
    "Joshua",
    "Michelle",
    "Kenneth",
    "Carol",
    "Kevin",
    "Amanda",
    "Brian",
    "Melissa",
    "George",
    "Deborah",
    "Timothy",
    "Stephanie",
    "Ronald",
    "Rebecca",
    "Aiden",
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Sophia",
    "Mateo",
    "Isabella",
    "Lucas",
    "Mia",
];

/// Family names for `name.lastName`.
pub(super) static LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Kuhn",
    "Schmidt",
    "Becker",
    "Okafor",
    "Tanaka",
    "Kowalski",
];

/// Seniority words that open a `name.jobTitle`.
pub(super) static JOB_DESCRIPTORS: &[&str] = &[
    "Lead",
    "Senior",
    "Direct",
    "Corporate",
    "Dynamic",
    "Future",
    "Product",
    "National",
    "Regional",
    "District",
    "Central",
    "Global",
    "Customer",
    "Investor",
    "Interim",
    "International",
    "Legacy",
    "Forward",
    "Internal",
    "Human",
    "Chief",
    "Principal",
];

/// Business areas in the middle of a `name.jobTitle`.
pub(super) static JOB_AREAS: &[&str] = &[
    "Solutions",
    "Program",
    "Brand",
    "Security",
    "Research",
    "Marketing",
    "Directives",
    "Implementation",
    "Integration",
    "Functionality",
    "Response",
    "Paradigm",
    "Tactics",
    "Identity",
    "Markets",
    "Group",
    "Division",
    "Applications",
    "Optimization",
    "Operations",
    "Infrastructure",
    "Intranet",
    "Communications",
    "Web",
    "Branding",
    "Quality",
    "Assurance",
    "Mobility",
    "Accounts",
    "Data",
    "Creative",
    "Configuration",
    "Accountability",
    "Interactions",
    "Factors",
    "Usability",
    "Metrics",
];

/// Roles that close a `name.jobTitle`.
pub(super) static JOB_TYPES: &[&str] = &[
    "Supervisor",
    "Associate",
    "Executive",
    "Liaison",
    "Officer",
    "Manager",
    "Engineer",
    "Specialist",
    "Director",
    "Coordinator",
    "Administrator",
    "Architect",
    "Analyst",
    "Designer",
    "Planner",
    "Orchestrator",
    "Technician",
    "Developer",
    "Producer",
    "Consultant",
    "Assistant",
    "Facilitator",
    "Agent",
    "Representative",
    "Strategist",
];

/// The 50 US states, index-aligned with [`US_STATE_ABBRS`].
pub(super) static US_STATES: &[&str] = &[
    "Alabama",
    "Alaska",
    "Arizona",
    "Arkansas",
    "California",
    "Colorado",
    "Connecticut",
    "Delaware",
    "Florida",
    "Georgia",
    "Hawaii",
    "Idaho",
    "Illinois",
    "Indiana",
    "Iowa",
    "Kansas",
    "Kentucky",
    "Louisiana",
    "Maine",
    "Maryland",
    "Massachusetts",
    "Michigan",
    "Minnesota",
    "Mississippi",
    "Missouri",
    "Montana",
    "Nebraska",
    "Nevada",
    "New Hampshire",
    "New Jersey",
    "New Mexico",
    "New York",
    "North Carolina",
    "North Dakota",
    "Ohio",
    "Oklahoma",
    "Oregon",
    "Pennsylvania",
    "Rhode Island",
    "South Carolina",
    "South Dakota",
    "Tennessee",
    "Texas",
    "Utah",
    "Vermont",
    "Virginia",
    "Washington",
    "West Virginia",
    "Wisconsin",
    "Wyoming",
];

/// Postal abbreviations of the 50 US states, index-aligned with [`US_STATES`].
pub(super) static US_STATE_ABBRS: &[&str] = &[
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY",
];

/// Cities for `address.city`.
pub(super) static CITIES: &[&str] = &[
    "New York",
    "Los Angeles",
    "Chicago",
    "Houston",
    "Phoenix",
    "Philadelphia",
    "San Antonio",
    "San Diego",
    "Dallas",
    "San Jose",
    "Austin",
    "Jacksonville",
    "Fort Worth",
    "Columbus",
    "Charlotte",
    "Indianapolis",
    "San Francisco",
    "Seattle",
    "Denver",
    "Nashville",
    "Oklahoma City",
    "Washington",
    "El Paso",
    "Boston",
    "Portland",
    "Las Vegas",
    "Detroit",
    "Memphis",
    "Louisville",
    "Baltimore",
    "Milwaukee",
    "Albuquerque",
    "Tucson",
    "Fresno",
    "Sacramento",
    "Atlanta",
    "Miami",
    "Minneapolis",
    "Tampa",
    "New Orleans",
];

/// Countries for `address.country`.
pub(super) static COUNTRIES: &[&str] = &[
    "United States",
    "Canada",
    "Mexico",
    "Brazil",
    "Argentina",
    "Chile",
    "Colombia",
    "Peru",
    "United Kingdom",
    "Ireland",
    "France",
    "Germany",
    "Spain",
    "Portugal",
    "Italy",
    "Netherlands",
    "Belgium",
    "Switzerland",
    "Austria",
    "Sweden",
    "Norway",
    "Denmark",
    "Finland",
    "Poland",
    "Greece",
    "Turkey",
    "Egypt",
    "Nigeria",
    "Kenya",
    "South Africa",
    "India",
    "China",
    "Japan",
    "South Korea",
    "Singapore",
    "Indonesia",
    "Australia",
    "New Zealand",
];

/// ISO 3166-1 alpha-2 codes for `address.countryCode`.
pub(super) static COUNTRY_CODES: &[&str] = &[
    "US", "CA", "MX", "BR", "AR", "CL", "CO", "PE", "GB", "IE", "FR", "DE", "ES", "PT", "IT", "NL",
    "BE", "CH", "AT", "SE", "NO", "DK", "FI", "PL", "GR", "TR", "EG", "NG", "KE", "ZA", "IN", "CN",
    "JP", "KR", "SG", "ID", "AU", "NZ",
];

/// Street kinds that end an `address.streetAddress`.
pub(super) static STREET_SUFFIXES: &[&str] = &[
    "Street",
    "Avenue",
    "Road",
    "Lane",
    "Drive",
    "Boulevard",
    "Court",
    "Place",
    "Way",
    "Terrace",
    "Parkway",
    "Circle",
    "Square",
    "Trail",
    "Highway",
];

/// Mail providers for `internet.email`.
pub(super) static EMAIL_PROVIDERS: &[&str] = &["gmail.com", "yahoo.com", "hotmail.com"];

/// Top-level domains for `internet.domainName` and `internet.url`.
pub(super) static DOMAIN_SUFFIXES: &[&str] = &["com", "net", "org", "biz", "info", "name", "io"];

/// Browser identification strings for `internet.userAgent`.
pub(super) static USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0",
];

/// Legal-form endings for `company.companyName`.
pub(super) static COMPANY_SUFFIXES: &[&str] = &["Inc", "and Sons", "LLC", "Group"];

/// First word of a `commerce.productName`.
pub(super) static PRODUCT_ADJECTIVES: &[&str] = &[
    "Small",
    "Ergonomic",
    "Rustic",
    "Intelligent",
    "Gorgeous",
    "Incredible",
    "Fantastic",
    "Practical",
    "Sleek",
    "Awesome",
    "Generic",
    "Handcrafted",
    "Handmade",
    "Licensed",
    "Refined",
    "Unbranded",
    "Tasty",
];

/// Middle word of a `commerce.productName`.
pub(super) static PRODUCT_MATERIALS: &[&str] = &[
    "Steel", "Wooden", "Concrete", "Plastic", "Cotton", "Granite", "Rubber", "Metal", "Soft",
    "Fresh", "Frozen",
];

/// Last word of a `commerce.productName`.
pub(super) static PRODUCTS: &[&str] = &[
    "Chair", "Car", "Computer", "Keyboard", "Mouse", "Bike", "Ball", "Gloves", "Pants", "Shirt",
    "Table", "Shoes", "Hat", "Towels", "Soap", "Tuna", "Chicken", "Fish", "Cheese", "Bacon",
    "Pizza", "Salad", "Sausages", "Chips",
];

/// Store departments for `commerce.department`.
pub(super) static DEPARTMENTS: &[&str] = &[
    "Books",
    "Movies",
    "Music",
    "Games",
    "Electronics",
    "Computers",
    "Home",
    "Garden",
    "Tools",
    "Grocery",
    "Health",
    "Beauty",
    "Toys",
    "Kids",
    "Baby",
    "Clothing",
    "Shoes",
    "Jewelery",
    "Sports",
    "Outdoors",
    "Automotive",
    "Industrial",
];

/// Colour names for `commerce.color`.
pub(super) static COLORS: &[&str] = &[
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "mint green",
    "teal",
    "white",
    "black",
    "orange",
    "pink",
    "grey",
    "maroon",
    "violet",
    "turquoise",
    "tan",
    "sky blue",
    "salmon",
    "plum",
    "orchid",
    "olive",
    "magenta",
    "lime",
    "ivory",
    "indigo",
    "gold",
    "fuchsia",
    "cyan",
    "azure",
    "lavender",
    "silver",
];

/// Latin filler for `lorem.*` and `system.fileName`.
pub(super) static LOREM_WORDS: &[&str] = &[
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "enim",
    "ad",
    "minim",
    "veniam",
    "quis",
    "nostrud",
    "exercitation",
    "ullamco",
    "laboris",
    "nisi",
    "aliquip",
    "ex",
    "ea",
    "commodo",
    "consequat",
    "duis",
    "aute",
    "irure",
    "in",
    "reprehenderit",
    "voluptate",
    "velit",
    "esse",
    "cillum",
    "fugiat",
    "nulla",
    "pariatur",
    "excepteur",
    "sint",
    "occaecat",
    "cupidatat",
    "non",
    "proident",
    "sunt",
    "culpa",
    "qui",
    "officia",
    "deserunt",
    "mollit",
    "anim",
    "id",
    "est",
    "laborum",
];

/// English words for `random.word` and `random.words`.
pub(super) static RANDOM_WORDS: &[&str] = &[
    "bandwidth",
    "monitor",
    "protocol",
    "firewall",
    "matrix",
    "pixel",
    "circuit",
    "array",
    "program",
    "driver",
    "interface",
    "microchip",
    "sensor",
    "system",
    "capacitor",
    "panel",
    "alarm",
    "feed",
    "application",
    "transmitter",
    "card",
    "hard drive",
    "port",
    "bus",
    "river",
    "harbor",
    "orchard",
    "lantern",
    "meadow",
    "granite",
    "copper",
    "velvet",
    "summit",
    "canyon",
    "compass",
    "engine",
    "ledger",
    "mosaic",
    "pepper",
    "quartz",
    "saddle",
    "timber",
    "violet",
    "willow",
    "zephyr",
    "Ergonomic",
    "Sleek",
    "Refined",
    "Practical",
    "Awesome",
];

/// ISO 4217 codes for `finance.currencyCode`.
pub(super) static CURRENCY_CODES: &[&str] = &[
    "USD", "EUR", "GBP", "JPY", "CNY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN",
    "CZK", "HUF", "INR", "BRL", "MXN", "ZAR", "KRW", "SGD", "HKD", "TRY", "ILS", "AED",
];

/// File extensions for `system.fileName`.
pub(super) static FILE_EXTENSIONS: &[&str] = &[
    "txt", "csv", "json", "pdf", "png", "jpg", "gif", "mp3", "mp4", "html", "xml", "zip", "docx",
    "xlsx", "log",
];

/// `phone.phoneNumber` layouts; `#` becomes a random digit.
pub(super) static PHONE_FORMATS: &[&str] = &[
    "###-###-####",
    "(###) ###-####",
    "1-###-###-####",
    "###.###.####",
];

/// `address.zipCode` layouts; `#` becomes a random digit.
pub(super) static ZIP_FORMATS: &[&str] = &["#####", "#####-####"];

/// `address.streetAddress` house-number layouts; `#` becomes a random digit.
pub(super) static BUILDING_NUMBER_FORMATS: &[&str] = &["#####", "####", "###"];

/// Day names, Monday first (chrono's `num_days_from_monday` order).
pub(super) static WEEKDAYS: &[&str] = &[
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Abbreviated day names, Monday first.
pub(super) static WEEKDAYS_ABBR: &[&str] = &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Month names, January first.
pub(super) static MONTHS: &[&str] = &[
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Abbreviated month names, January first.
pub(super) static MONTHS_ABBR: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_json_safe_and_aligned() {
        let all: &[&[&str]] = &[
            FIRST_NAMES,
            LAST_NAMES,
            JOB_DESCRIPTORS,
            JOB_AREAS,
            JOB_TYPES,
            US_STATES,
            US_STATE_ABBRS,
            CITIES,
            COUNTRIES,
            COUNTRY_CODES,
            STREET_SUFFIXES,
            EMAIL_PROVIDERS,
            DOMAIN_SUFFIXES,
            USER_AGENTS,
            COMPANY_SUFFIXES,
            PRODUCT_ADJECTIVES,
            PRODUCT_MATERIALS,
            PRODUCTS,
            DEPARTMENTS,
            COLORS,
            LOREM_WORDS,
            RANDOM_WORDS,
            CURRENCY_CODES,
            FILE_EXTENSIONS,
            PHONE_FORMATS,
            ZIP_FORMATS,
            BUILDING_NUMBER_FORMATS,
            WEEKDAYS,
            WEEKDAYS_ABBR,
            MONTHS,
            MONTHS_ABBR,
        ];
        for list in all {
            assert!(!list.is_empty());
            for word in *list {
                assert!(!word.is_empty());
                assert!(
                    word.bytes()
                        .all(|b| b.is_ascii() && b >= 0x20 && b != b'"' && b != b'\\'),
                    "{word:?} would need JSON escaping"
                );
            }
        }
        assert_eq!(US_STATES.len(), 50);
        assert_eq!(US_STATE_ABBRS.len(), 50);
        assert_eq!(WEEKDAYS.len(), 7);
        assert_eq!(MONTHS.len(), 12);
        assert_eq!(MONTHS_ABBR.len(), 12);
        // Names feed domain names and e-mail addresses, so they must be single words.
        for name in FIRST_NAMES.iter().chain(LAST_NAMES) {
            assert!(name.bytes().all(|b| b.is_ascii_alphabetic()), "{name}");
        }
    }
}

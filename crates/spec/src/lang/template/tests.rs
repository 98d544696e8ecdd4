//! Tests of templates through their public API: parsing, its errors, and rendering.

use super::*;
use chrono::TimeZone;

use super::helpers::{DAY_MS, HELPERS, YEAR_MS};
use crate::lang::faker_data as words;

const KDG_EXAMPLE: &str = r#"{"timestamp": "{{date.now}}", "eventType": "{{random.weightedArrayElement({"weights":[0.3,0.1,0.6],"data":["rent","buy","trailer"]})}}", "film_id": {{random.number({"min":1,"max":1000})}}, "distributor": "{{random.arrayElement(["sony","warner","disney"])}}", "platform": "{{random.arrayElement(["web","ios","android"])}}", "state": "{{address.state}}"}"#;

fn fixed_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 20, 34, 6)
        .single()
        .expect("valid date")
        + chrono::Duration::milliseconds(123)
}

fn render_once(source: &str, seed: u64) -> String {
    let template = Template::parse(source).unwrap_or_else(|errors| panic!("{source}: {errors:?}"));
    let mut ctx = RenderContext::new(Some(seed));
    ctx.set_now(fixed_now());
    let mut out = String::new();
    template.render(&mut ctx, &mut out);
    out
}

fn render_many(source: &str, seed: u64, count: usize) -> Vec<String> {
    let template = Template::parse(source).unwrap_or_else(|errors| panic!("{source}: {errors:?}"));
    let mut ctx = RenderContext::new(Some(seed));
    ctx.set_now(fixed_now());
    (0..count)
        .map(|_| {
            let mut out = String::new();
            template.render(&mut ctx, &mut out);
            out
        })
        .collect()
}

fn errors(source: &str) -> Vec<TemplateError> {
    match Template::parse(source) {
        Ok(_) => panic!("{source} should not parse"),
        Err(errors) => errors,
    }
}

fn single_error(source: &str) -> TemplateError {
    let mut errors = errors(source);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

#[test]
fn same_seed_same_output_and_different_seeds_differ() {
    let first = render_many(KDG_EXAMPLE, 7, 50);
    let again = render_many(KDG_EXAMPLE, 7, 50);
    let other = render_many(KDG_EXAMPLE, 8, 50);
    assert_eq!(first, again);
    assert_ne!(first, other);
}

#[test]
fn kdg_example_renders_valid_json() {
    for record in render_many(KDG_EXAMPLE, 1, 1000) {
        let value: serde_json::Value =
            serde_json::from_str(&record).unwrap_or_else(|error| panic!("{record}: {error}"));
        let film_id = value["film_id"].as_i64().expect("film_id is an integer");
        assert!((1..=1000).contains(&film_id), "{film_id}");
        assert!(["rent", "buy", "trailer"].contains(&value["eventType"].as_str().expect("string")));
        assert!(
            ["sony", "warner", "disney"].contains(&value["distributor"].as_str().expect("string"))
        );
        assert!(["web", "ios", "android"].contains(&value["platform"].as_str().expect("string")));
        assert!(words::US_STATES.contains(&value["state"].as_str().expect("string")));
        assert_eq!(value["timestamp"], "2026-11-25T20:34:06.123Z");
    }
}

#[test]
fn kdg_example_copied_out_of_a_json_document_renders_the_same() {
    // The whole template as a JSON string's content, and only the helper arguments escaped.
    let escaped = KDG_EXAMPLE.replace('"', "\\\"");
    let arguments_only = KDG_EXAMPLE
        .replace("({\"", "({\\\"")
        .replace("\":", "\\\":");
    assert!(
        arguments_only.contains("{\\\"weights\\\":"),
        "{arguments_only}"
    );
    for source in [escaped, arguments_only] {
        assert_eq!(
            render_many(&source, 1, 100),
            render_many(KDG_EXAMPLE, 1, 100),
            "{source}"
        );
    }
    // Still broken after unescaping: the problems of the text as given, and what the
    // unescaped reading found.
    let error = single_error("{{random.number({\\\"min\\\":})}}");
    assert_eq!(error.message, "expected a double-quoted key");
    let help = error.help.unwrap();
    assert!(
        help.ends_with("the template has `\\\"` (JSON's escape of a quote), so it was also read with `\\\"` as `\"`, and that reading fails at line 1, column 24: expected a JSON value (string, number, array, object, true, false or null)"),
        "{help}"
    );
}

#[test]
fn weighted_choice_follows_the_weights() {
    let records = render_many(KDG_EXAMPLE, 3, 10_000);
    let mut counts = [0usize; 3];
    let mut film_ids = std::collections::HashSet::new();
    for record in &records {
        let value: serde_json::Value = serde_json::from_str(record).expect("valid JSON");
        let index = ["rent", "buy", "trailer"]
            .iter()
            .position(|kind| value["eventType"] == *kind)
            .expect("known event type");
        counts[index] += 1;
        film_ids.insert(value["film_id"].as_i64().expect("integer"));
    }
    for (count, expected) in counts.iter().zip([0.3, 0.1, 0.6]) {
        let share = *count as f64 / records.len() as f64;
        assert!(
            (share - expected).abs() < 0.02,
            "share {share} expected {expected}: {counts:?}"
        );
    }
    // 10,000 draws from 1..=1000 should hit nearly every value.
    assert!(film_ids.len() > 990, "{}", film_ids.len());
}

#[test]
fn zero_weights_are_never_chosen() {
    let source = r#"{{random.weightedArrayElement({"weights":[0,1,0],"data":["a","b","c"]})}}"#;
    assert!(render_many(source, 5, 500).iter().all(|value| value == "b"));
}

#[test]
fn date_now_formats() {
    assert_eq!(
        render_once(r#"{{date.now("YYYY/MM/DD")}}"#, 1),
        "2026/11/25"
    );
    assert_eq!(
        render_once("{{date.now}}|{{date.utc}}", 1),
        "2026-11-25T20:34:06.123Z|2026-11-25T20:34:06.123Z"
    );
    assert_eq!(
        render_once(r#"{{date.now("YY M D H h hh mm ss SSS A a Z ZZ")}}"#, 1),
        "26 11 25 20 8 08 34 06 123 PM pm +00:00 +0000"
    );
    assert_eq!(
        render_once(r#"{{date.now("dddd ddd MMMM MMM [YYYY at] X x")}}"#, 1),
        "Wednesday Wed November Nov YYYY at 1795638846 1795638846123"
    );
    assert_eq!(
        render_once(r#"{{date.now("YYYY-MM-DDTHH:mm:ss")}}"#, 1),
        "2026-11-25T20:34:06"
    );
}

#[test]
fn relative_dates_stay_in_range() {
    let now = fixed_now().timestamp_millis();
    let parse = |text: &str| {
        DateTime::parse_from_rfc3339(text)
            .expect("ISO date")
            .timestamp_millis()
    };
    for value in render_many("{{date.past}}", 1, 200) {
        let millis = parse(&value);
        assert!(millis < now && millis >= now - YEAR_MS as i64, "{value}");
    }
    for value in render_many("{{date.future(2)}}", 1, 200) {
        let millis = parse(&value);
        assert!(
            millis > now && millis <= now + 2 * YEAR_MS as i64,
            "{value}"
        );
    }
    for value in render_many("{{date.recent}}", 1, 200) {
        let millis = parse(&value);
        assert!(millis < now && millis >= now - DAY_MS as i64, "{value}");
    }
    let from = parse("2020-01-01T00:00:00Z");
    let to = parse("2021-01-01T00:00:00Z");
    for value in render_many(
        r#"{{date.between("2020-01-01","2021-01-01T00:00:00Z")}}"#,
        1,
        200,
    ) {
        let millis = parse(&value);
        assert!((from..=to).contains(&millis), "{value}");
    }
    for value in render_many(r#"{{date.past(1, "2000-06-01")}}"#, 1, 50) {
        assert!(
            value.starts_with("1999-") || value.starts_with("2000-"),
            "{value}"
        );
    }
}

#[test]
fn numbers_respect_range_and_precision() {
    for value in render_many(r#"{{random.number({"min":-5,"max":5})}}"#, 1, 500) {
        let n: i64 = value.parse().expect("integer");
        assert!((-5..=5).contains(&n));
    }
    for value in render_many("{{random.number(3)}}", 1, 200) {
        assert!(["0", "1", "2", "3"].contains(&value.as_str()), "{value}");
    }
    for value in render_many("{{random.number}}", 1, 200) {
        assert!((0..=99_999).contains(&value.parse::<i64>().expect("integer")));
    }
    let mut saw_fraction = false;
    for value in render_many(
        r#"{{random.number({"min":1,"max":2,"precision":0.01})}}"#,
        1,
        500,
    ) {
        let n: f64 = value.parse().expect("number");
        assert!((1.0..=2.0).contains(&n), "{value}");
        let decimals = value
            .split_once('.')
            .map_or(0, |(_, fraction)| fraction.len());
        assert!(
            (decimals <= 2 && !value.ends_with('0')) || !value.contains('.'),
            "{value}"
        );
        saw_fraction |= decimals > 0;
    }
    assert!(saw_fraction);
    for value in render_many(r#"{{random.float({"min":-1,"max":1})}}"#, 1, 500) {
        let n: f64 = value.parse().expect("number");
        assert!((-1.0..=1.0).contains(&n), "{value}");
    }
    for value in render_many(
        r#"{{random.number({"min":0,"max":10,"precision":2.5})}}"#,
        1,
        200,
    ) {
        assert!(
            ["0", "2.5", "5", "7.5", "10"].contains(&value.as_str()),
            "{value}"
        );
    }
    for value in render_many(
        "{{address.latitude}},{{address.longitude(10, -10, 2)}}",
        1,
        200,
    ) {
        let (lat, lon) = value.split_once(',').expect("two numbers");
        assert_eq!(lat.split_once('.').expect("decimals").1.len(), 4, "{lat}");
        assert!((-90.0..=90.0).contains(&lat.parse::<f64>().expect("number")));
        assert_eq!(lon.split_once('.').expect("decimals").1.len(), 2, "{lon}");
        assert!((-10.0..=10.0).contains(&lon.parse::<f64>().expect("number")));
    }
    for value in render_many(
        r#"{{commerce.price(5, 9, 2, "$")}} {{finance.amount(0, 1)}}"#,
        1,
        200,
    ) {
        let (price, amount) = value.split_once(' ').expect("two values");
        assert!(
            ["$5.00", "$6.00", "$7.00", "$8.00", "$9.00"].contains(&price),
            "{price}"
        );
        assert_eq!(amount.len(), 4, "{amount}");
        assert!((0.0..=1.0).contains(&amount.parse::<f64>().expect("number")));
    }
}

#[test]
fn array_elements_render_as_written() {
    let source = r#"{{random.arrayElement(["say \"hi\"\\", 1.50, true, {"a": 1}])}}"#;
    let mut seen: Vec<String> = render_many(source, 1, 200);
    seen.sort();
    seen.dedup();
    assert_eq!(seen, vec!["1.50", "say \"hi\"\\", "true", "{\"a\": 1}"]);
    let keys = render_many(r#"{{random.objectElement({"x":1,"y":2},"key")}}"#, 1, 100);
    assert!(keys.iter().all(|key| key == "x" || key == "y"));
    let values = render_many(r#"{{random.objectElement({"x":"one","y":2})}}"#, 1, 100);
    assert!(values.iter().all(|value| value == "one" || value == "2"));
}

#[test]
fn braces_and_literals() {
    assert_eq!(render_once("plain } text {", 1), "plain } text {");
    let value = render_once(r#"{"a":{{{random.boolean}}}}"#, 1);
    assert!(
        value == r#"{"a":{true}}"# || value == r#"{"a":{false}}"#,
        "{value}"
    );
    let value = render_once(r#"[{{ random.arrayElement(["}}", "{{"]) }}]"#, 1);
    assert!(value == "[}}]" || value == "[{{]", "{value}");
    assert_eq!(
        render_once("{{random.number( 0 )}}x{{random.number()}}", 1)
            .chars()
            .next(),
        Some('0')
    );
    assert_eq!(
        render_once("caf\u{e9} {{date.now(\"[\u{e9}t\u{e9}] YYYY\")}}", 1),
        "caf\u{e9} \u{e9}t\u{e9} 2026"
    );
}

#[test]
fn every_documented_form_parses_and_renders() {
    for info in HELPERS {
        for form in info.forms {
            let source = format!("{{{{{form}}}}}");
            let template =
                Template::parse(&source).unwrap_or_else(|errors| panic!("{form}: {errors:?}"));
            assert_eq!(template.helpers(), vec![info.name.to_owned()]);
            let mut ctx = RenderContext::new(Some(11));
            let mut out = String::new();
            for _ in 0..20 {
                out.clear();
                template.render(&mut ctx, &mut out);
                assert!(!out.is_empty(), "{form}");
                // Anything a helper renders by itself must be safe inside a JSON string.
                let quoted = format!("\"{out}\"");
                assert!(
                    serde_json::from_str::<String>(&quoted).is_ok(),
                    "{form}: {out}"
                );
            }
        }
    }
}

#[test]
fn faker_shapes() {
    for uuid in render_many("{{random.uuid}}", 1, 50) {
        let groups: Vec<&str> = uuid.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            vec![8, 4, 4, 4, 12],
            "{uuid}"
        );
        assert!(groups[2].starts_with('4'), "{uuid}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{uuid}"
        );
        assert!(
            uuid.bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }
    for ip in render_many("{{internet.ip}}", 1, 50) {
        assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    }
    for email in render_many("{{internet.email}}", 1, 50) {
        let (user, domain) = email.split_once('@').expect("an @");
        assert!(
            !user.is_empty() && words::EMAIL_PROVIDERS.contains(&domain),
            "{email}"
        );
    }
    for code in render_many("{{random.alphaNumeric(12)}}", 1, 50) {
        assert_eq!(code.len(), 12);
        assert!(
            code.bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
        );
    }
    for zip in render_many("{{address.zipCode(\"##-#\")}}", 1, 20) {
        assert!(zip.len() == 4 && zip.as_bytes()[2] == b'-', "{zip}");
    }
    for sentence in render_many("{{lorem.sentence(4)}}", 1, 20) {
        assert_eq!(sentence.split(' ').count(), 4, "{sentence}");
        assert!(sentence.ends_with('.') && sentence.starts_with(|c: char| c.is_ascii_uppercase()));
    }
    assert_eq!(render_once("{{lorem.words(0)}}", 1), "");
    assert!(render_once("{{random.words(5)}}", 1).split(' ').count() >= 5);
    let state = render_once("{{address.stateAbbr}}", 1);
    assert!(words::US_STATE_ABBRS.contains(&state.as_str()));
}

#[test]
fn helpers_lists_each_name_once() {
    let template = Template::parse(KDG_EXAMPLE).expect("parses");
    assert_eq!(
        template.helpers(),
        vec![
            "date.now",
            "random.weightedArrayElement",
            "random.number",
            "random.arrayElement",
            "address.state"
        ]
    );
}

#[test]
fn unknown_helper_suggests_the_closest_name() {
    let error = single_error("{\"a\": \"{{name.firstname}}\"}").to_string();
    assert!(
        error
            == "line 1, column 10: unknown helper `name.firstname` \
                 (help: did you mean `name.firstName`?)",
        "{error}"
    );
    let errors = errors("{\"a\": 1,\n \"b\": {{random.numbr({\"max\":3})}}}");
    assert_eq!((errors[0].line, errors[0].column), (2, 9));
    assert_eq!(errors[0].message, "unknown helper `random.numbr`");
    assert_eq!(
        errors[0].help.as_deref(),
        Some("did you mean `random.number`?")
    );
    let error = single_error("{{faker.name.firstName}}");
    assert_eq!(
        error.help.as_deref(),
        Some("drop the `faker.` prefix: `{{name.firstName}}`")
    );
    let error = single_error("{{zzz.qqq}}");
    assert!(
        error
            .help
            .as_deref()
            .is_some_and(|help| help.contains("namespaces")),
        "{error:?}"
    );
}

#[test]
fn bad_json_argument_is_reported_where_it_is() {
    let error = single_error("x {{random.arrayElement(['a','b'])}}");
    assert_eq!((error.line, error.column), (1, 26));
    assert_eq!(
        error.help.as_deref(),
        Some("JSON strings use double quotes: \"text\"")
    );
    let error = single_error("{{random.number({min:1})}}");
    assert_eq!(
        (error.column, error.message.as_str()),
        (18, "expected a double-quoted key")
    );
    let error = single_error("{{random.number({\"min\":1,\"max\":})}}");
    assert_eq!(error.column, 32);
    let error = single_error("{{random.arrayElement([\"a\" \"b\"])}}");
    assert_eq!(
        (error.column, error.message.as_str()),
        (28, "expected `,` or `]` in the array")
    );
    let error = single_error("{{random.number(\"ten\")}}");
    assert_eq!(error.column, 17);
    assert_eq!(
        error.message,
        "expected a maximum or an object such as {\"min\":1,\"max\":10}, found a string"
    );
    let error = single_error("{{random.number({\"min\":1,\"mx\":3})}}");
    assert_eq!(
        (error.column, error.help.as_deref()),
        (26, Some("did you mean `max`?"))
    );
    let error = single_error("{{random.number({\"min\":10,\"max\":1})}}");
    assert_eq!(
        error.message,
        "the minimum (10) is greater than the maximum (1)"
    );
    let error = single_error("{{random.boolean(1)}}");
    assert_eq!(
        (error.column, error.message.as_str()),
        (18, "`random.boolean` takes no arguments")
    );
    let error = single_error("{{date.between(\"2020-01-01\")}}");
    assert_eq!(
        (error.column, error.message.as_str()),
        (28, "`date.between` needs an end date")
    );
    let error = single_error("{{date.between(\"2020-01-01\", \"soon\")}}");
    assert_eq!(error.column, 30);
    let error = single_error("{{random.arrayElement([])}}");
    assert_eq!(error.message, "the array of choices is empty");
    let error = single_error("{{date.now(\"[YYYY\")}}");
    assert!(error.message.contains("never closed with `]`"), "{error:?}");
}

#[test]
fn unclosed_placeholder_is_reported_at_its_braces() {
    let error = single_error("{\"a\": 1,\n  \"b\": {{random.number");
    assert_eq!((error.line, error.column), (2, 8));
    assert_eq!(error.message, "`{{` is never closed with `}}`");
    // The next placeholder is still checked.
    let found = errors("\"{{date.now\", \"{{nope}}\"");
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        (found[0].column, found[0].message.as_str()),
        (2, "`{{` is never closed with `}}`")
    );
    assert_eq!(
        (found[1].column, found[1].message.as_str()),
        (18, "unknown helper `nope`")
    );
    // A runaway string must not hide the next placeholder's problem.
    let runaway = errors("\"{{date.now(\"YYYY)}}\"} {{random.number(x)}}");
    assert_eq!(runaway.len(), 2, "{runaway:?}");
    assert_eq!(runaway[0].column, 22);
    assert_eq!(
        (runaway[1].column, runaway[1].message.as_str()),
        (40, "expected a JSON value")
    );
    let error = single_error("{{date.now(\"YYYY)}}");
    assert_eq!(error.column, 12);
    assert!(
        error.message.contains("never closed with `\"`"),
        "{error:?}"
    );
    let error = single_error("{{}}");
    assert_eq!(
        (error.column, error.message.as_str()),
        (3, "expected a helper name after `{{`")
    );
}

#[test]
fn bad_weights_are_rejected() {
    let error =
        single_error(r#"{{random.weightedArrayElement({"weights":[0.5,-0.1],"data":["a","b"]})}}"#);
    assert_eq!(
        (error.column, error.message.as_str()),
        (47, "weights must be non-negative numbers")
    );
    let error = single_error(r#"{{random.weightedArrayElement({"weights":[1,2],"data":["a"]})}}"#);
    assert_eq!(error.column, 42);
    assert_eq!(
        error.message,
        "`weights` has 2 entries but `data` has 1; they must match"
    );
    let error =
        single_error(r#"{{random.weightedArrayElement({"weights":[0,0],"data":["a","b"]})}}"#);
    assert_eq!(
        (error.column, error.message.as_str()),
        (42, "the weights must add up to more than 0")
    );
    let error = single_error(r#"{{random.weightedArrayElement({"data":["a"]})}}"#);
    assert_eq!(
        (error.column, error.message.as_str()),
        (31, "missing `weights`")
    );
    let error = single_error(r#"{{random.weightedArrayElement({"weights":["1"],"data":["a"]})}}"#);
    assert_eq!(error.column, 43);
}

#[test]
fn all_errors_are_collected() {
    let source = "{{random.nubmer}} {{random.number(-)}}\n{{random.uuid(1)}} {{date.between(\"2021-01-01\",\"2020-01-01\")}}";
    let found: Vec<(usize, usize)> = errors(source)
        .iter()
        .map(|error| (error.line, error.column))
        .collect();
    // `-` without digits is reported where the digits should start.
    assert_eq!(found, vec![(1, 3), (1, 36), (2, 15), (2, 48)]);
}

#[test]
fn hostile_input_does_not_panic() {
    let deep = format!(
        "{{{{random.arrayElement({}1{})}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(errors(&deep)[0].message.contains("nested"));
    for source in [
        "{{",
        "{{random",
        "{{random.number(",
        "{{random.number(\"",
        "{{random.number(\"\\u12",
        "{{random.number(1e999)}}",
        "{{random.alphaNumeric(1e9)}}",
        "{{date.past(-1)}}",
        "{{random.number({\"precision\":0})}}",
        "{{random.number({\"min\":0,\"max\":1e300,\"precision\":1e-10})}}",
        "{{address.latitude(1,2)}}",
        "\u{e9}{{\u{e9}}}",
    ] {
        assert!(Template::parse(source).is_err(), "{source}");
    }
}

#[test]
#[ignore = "micro-benchmark; run with --ignored --nocapture"]
fn render_throughput() {
    let template = Template::parse(KDG_EXAMPLE).expect("parses");
    let mut ctx = RenderContext::new(Some(1));
    let mut out = String::with_capacity(256);
    let records = 1_000_000;
    let started = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..records {
        out.clear();
        template.render(&mut ctx, &mut out);
        bytes += out.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{records} records ({bytes} bytes) in {elapsed:.3}s: {:.0} records/s",
        records as f64 / elapsed
    );
}

//! `mysql_cdc` sources: what `plan` shows and checks, against the private MariaDB with a
//! row-based binlog (`scripts/mariadb-binlog.sh`, started by `scripts/test.sh`; its URL in
//! `PIPECTL_TEST_MARIADB_BINLOG_URL`) and against the machine's MariaDB, which runs without a
//! binlog; and that a run refuses the source, which cannot read the binlog yet.

use std::path::{Path, PathBuf};

use sqlx::Connection;

use crate::common::{output, pipectl, services_required, skip, snapshot};

/// One test's database (a MySQL schema) on a server, on a private runtime; dropped at the end.
struct Server {
    rt: tokio::runtime::Runtime,
    url: String,
    conn: sqlx::MySqlConnection,
    /// The database's name, also the prefix of users the test creates.
    name: String,
    users: Vec<String>,
}

impl Server {
    /// The binlog server, or `None` (the test skips) when it is not running outside CI.
    fn binlog() -> Option<Server> {
        let Ok(url) = std::env::var("PIPECTL_TEST_MARIADB_BINLOG_URL") else {
            assert!(
                !services_required(),
                "PIPECTL_TEST_MARIADB_BINLOG_URL is not set: start the server with scripts/mariadb-binlog.sh start and eval \"$(scripts/mariadb-binlog.sh env)\""
            );
            skip(
                "PIPECTL_TEST_MARIADB_BINLOG_URL not set (scripts/test.sh starts the binlog MariaDB)",
            );
            return None;
        };
        Server::connect(url, "the binlog MariaDB")
    }

    /// The binlog server with an InnoDB table `items` (id, what) holding rows 1 and 2, and the
    /// test's database name.
    fn binlog_with_items() -> Option<(Server, String)> {
        let mut s = Server::binlog()?;
        let db = s.name.clone();
        s.exec(&format!(
            "create table {db}.items (id int primary key, what varchar(10)) engine=InnoDB;
             insert into {db}.items values (1, 'one'), (2, 'two')"
        ));
        Some((s, db))
    }

    /// The machine's MariaDB (log_bin=OFF).
    fn machine() -> Option<Server> {
        let url = std::env::var("PIPECTL_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
        Server::connect(url, "MariaDB")
    }

    fn connect(url: String, what: &str) -> Option<Server> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let conn = match rt.block_on(sqlx::MySqlConnection::connect(&url)) {
            Ok(conn) => conn,
            Err(e) if services_required() => panic!("{what} at {url} is required: {e}"),
            Err(e) => {
                skip(&format!("no {what} at {url}: {e}"));
                return None;
            }
        };
        let name = format!("mycdc_{}_{:x}", std::process::id(), fastrand::u32(..));
        let mut server = Server {
            rt,
            url,
            conn,
            name,
            users: Vec::new(),
        };
        server.exec(&format!("create database {}", server.name));
        Some(server)
    }

    fn exec(&mut self, sql: &str) {
        self.rt
            .block_on(sqlx::raw_sql(sql).execute(&mut self.conn))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A user allowed to read the test's database only (no password: the server listens on
    /// loopback only), with its URL.
    fn reader(&mut self) -> String {
        let user = format!("{}_r", self.name);
        self.exec(&format!(
            "create user '{user}'@'127.0.0.1';
             grant select on {}.* to '{user}'@'127.0.0.1'",
            self.name
        ));
        self.users.push(user.clone());
        let (_, rest) = self.url.split_once('@').expect("the URL names a user");
        let (host, _) = rest.split_once('/').expect("the URL names a database");
        format!("mysql://{user}@{host}/{}", self.name)
    }

    /// A pipeline replicating the test's database into merged Delta tables.
    fn spec(&self, dir: &Path, url: &str, server_id: u32) -> PathBuf {
        let text = format!(
            r#"version: 1
name: mycdc
connections:
  db: {{ url: "{url}" }}
  lake: {{ url: "file://lake" }}
sources:
  sakila:
    type: mysql_cdc
    connection: db
    server_id: {server_id}
    include: [{{ schema: "{name}", table: "%" }}]
sinks:
  current:
    type: object_store
    inputs: [sakila]
    connection: lake
    key: "tables/{{table}}/"
    format: {{ type: delta }}
    mode: merge
"#,
            name = self.name,
        );
        let path = dir.join("pipeline.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `pipectl plan` of `spec`, with what differs between runs replaced.
    fn plan(&self, dir: &Path, spec: &Path) -> String {
        let (out, stdout, stderr) = output(pipectl(dir).arg("plan").arg(spec));
        assert!(out.status.success(), "{stderr}");
        let mut text = stdout
            .replace(&self.url, "<url>")
            .replace(&self.name, "<name>")
            .replace(&dir.display().to_string(), "<dir>");
        if let Some(i) = text.find(", spec ") {
            text = format!("{}, spec <hash>{}", &text[..i], &text[i + 7 + 16..]);
        }
        text.lines()
            .map(|line| {
                // The server's version, and the binlog position other tests move on.
                if let Some(i) = line.find("note: server: MariaDB ") {
                    let rest = &line[i + 22..];
                    let after = rest.find(',').map_or("", |j| &rest[j..]);
                    format!("{}note: server: MariaDB <version>{after}", &line[..i])
                } else if let Some(i) = line.find("binlog position now: ") {
                    let rest = &line[i..];
                    let after = rest.find(';').map_or("", |j| &rest[j..]);
                    format!(
                        "{}binlog position now: <file>:<position>, GTID <gtid>{after}",
                        &line[..i]
                    )
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = self.rt.block_on(
            sqlx::raw_sql(&format!("drop database if exists {name}")).execute(&mut self.conn),
        );
        for user in std::mem::take(&mut self.users) {
            let _ = self.rt.block_on(
                sqlx::raw_sql(&format!("drop user if exists '{user}'@'127.0.0.1'"))
                    .execute(&mut self.conn),
            );
        }
    }
}

#[test]
fn plan_shows_tables_keys_binlog_position_and_what_to_change() {
    let Some(mut s) = Server::binlog() else {
        return;
    };
    let db = s.name.clone();
    s.exec(&format!(
        "create table {db}.rental (rental_id int unsigned primary key, rental_date datetime(6),
                                   amount decimal(5,2), note varchar(40)) engine=InnoDB;
         create table {db}.film_actor (actor_id smallint unsigned, film_id smallint unsigned,
                                       primary key (actor_id, film_id)) engine=InnoDB;
         create table {db}.audit (at timestamp(6), what text) engine=InnoDB;
         create table {db}.legacy (id int primary key, flags bit(3)) engine=MyISAM;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = s.spec(dir.path(), &s.url.clone(), 4201);
    snapshot("plan_mysql_cdc.txt", &s.plan(dir.path(), &spec));
}

#[test]
fn plan_says_to_grant_replication_and_choose_another_server_id() {
    let Some(mut s) = Server::binlog() else {
        return;
    };
    let db = s.name.clone();
    s.exec(&format!("create table {db}.items (id int primary key)"));
    let reader = s.reader();
    let dir = tempfile::tempdir().unwrap();
    // 1 is the binlog server's own id (scripts/mariadb-binlog.sh).
    let spec = s.spec(dir.path(), &reader, 1);
    let text = s.plan(dir.path(), &spec);
    assert!(
        text.contains("lacks REPLICATION SLAVE and REPLICATION CLIENT")
            && text.contains("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '"),
        "{text}"
    );
    assert!(
        text.contains("server_id 1: it is the server's own `server_id`"),
        "{text}"
    );
    // The binlog itself is fine.
    assert!(!text.contains("log_bin is OFF"), "{text}");
    assert!(!text.contains("binlog_format is"), "{text}");
}

#[test]
fn plan_against_a_server_without_binlog_says_to_turn_log_bin_on() {
    let Some(mut s) = Server::machine() else {
        return;
    };
    let db = s.name.clone();
    s.exec(&format!("create table {db}.items (id int primary key)"));
    let dir = tempfile::tempdir().unwrap();
    let spec = s.spec(dir.path(), &s.url.clone(), 4201);
    let text = s.plan(dir.path(), &spec);
    let log_bin: Option<(i64,)> =
        s.rt.block_on(sqlx::query_as("select @@log_bin").fetch_optional(&mut s.conn))
            .unwrap();
    if log_bin != Some((0,)) {
        skip("the machine's MariaDB writes a binlog; nothing to check");
        return;
    }
    assert!(
        text.contains("warning: server: log_bin is OFF")
            && text.contains(
                "`log_bin = mysql-bin`, `binlog_format = ROW`, `binlog_row_image = FULL`"
            ),
        "{text}"
    );
    assert!(
        text.contains("reads <name>.items: primary key (id)"),
        "{text}"
    );
}

#[test]
fn a_run_refuses_the_source_until_the_binlog_can_be_read() {
    let Some(mut s) = Server::binlog() else {
        return;
    };
    let db = s.name.clone();
    s.exec(&format!(
        "create table {db}.items (id int primary key); insert into {db}.items values (1)"
    ));
    let dir = tempfile::tempdir().unwrap();
    let spec = s.spec(dir.path(), &s.url.clone(), 4201);
    let (out, _, stderr) = output(pipectl(dir.path()).arg("run").arg(&spec));
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`mysql_cdc` sources cannot run in this version yet"),
        "{stderr}"
    );
    assert!(!dir.path().join("lake/tables/items/_delta_log").exists());
}

#[test]
fn a_snapshot_reads_the_data_at_its_binlog_position() {
    use pipectl_engine::source::mysql_cdc::snapshot::{self, Snapshot};

    let Some((mut s, db)) = Server::binlog_with_items() else {
        return;
    };
    let mut snap = s.rt.block_on(Snapshot::open(&s.url)).unwrap();
    assert!(snap.mariadb);
    assert!(!snap.position.file.is_empty() && snap.position.position > 0);
    assert!(
        snap.position.gtid.as_deref().is_some_and(|g| !g.is_empty()),
        "{:?}",
        snap.position
    );
    // Changes after the snapshot are not in it, and the binlog position moves past it.
    s.exec(&format!(
        "insert into {db}.items values (3, 'three'); update {db}.items set what = 'uno' where id = 1"
    ));
    let rows: Vec<(i32, String)> =
        s.rt.block_on(
            sqlx::query_as(&format!("select id, what from {db}.items order by id"))
                .fetch_all(&mut snap.conn),
        )
        .unwrap();
    assert_eq!(rows, vec![(1, "one".to_owned()), (2, "two".to_owned())]);
    let now =
        s.rt.block_on(snapshot::current_position(&mut s.conn, true))
            .unwrap()
            .expect("the binlog server reports a position");
    assert!(
        (now.file.as_str(), now.position) > (snap.position.file.as_str(), snap.position.position),
        "{now:?} after {:?}",
        snap.position
    );
    assert_ne!(now.gtid, snap.position.gtid);
    s.rt.block_on(snap.close()).unwrap();
}

#[test]
fn the_binlog_from_a_snapshot_gives_its_committed_row_changes_in_order() {
    use pipectl_engine::source::mysql_cdc::binlog::read_changes;
    use pipectl_engine::source::mysql_cdc::snapshot::{self, Snapshot};

    let Some((mut s, db)) = Server::binlog_with_items() else {
        return;
    };
    let snap = s.rt.block_on(Snapshot::open(&s.url)).unwrap();
    let from = snap.position.clone();
    s.rt.block_on(snap.close()).unwrap();
    s.exec(&format!(
        "insert into {db}.items values (3, 'three');
         update {db}.items set what = 'uno' where id = 1;
         delete from {db}.items where id = 2"
    ));
    let until =
        s.rt.block_on(snapshot::current_position(&mut s.conn, true))
            .unwrap()
            .expect("the binlog server reports a position");
    let changes =
        s.rt.block_on(read_changes(&s.url, 4202, &from, &until))
            .unwrap();
    let ours: Vec<_> = changes.iter().filter(|c| c.schema == db).collect();
    let ops: Vec<(&str, &str)> = ours
        .iter()
        .map(|c| (c.op.letter(), c.table.as_str()))
        .collect();
    assert_eq!(
        ops,
        vec![("I", "items"), ("U", "items"), ("D", "items")],
        "{changes:?}"
    );
    assert!(ours[0].before.is_none() && ours[0].after.as_ref().is_some_and(|r| r.len() == 2));
    assert!(ours[1].before.is_some() && ours[1].after.is_some());
    assert!(ours[2].before.is_some() && ours[2].after.is_none());
    // Each change carries its transaction's commit, in binlog order, up to `until`.
    let commits: Vec<_> = ours
        .iter()
        .map(|c| (c.commit.file.clone(), c.commit.position))
        .collect();
    assert!(commits.windows(2).all(|w| w[0] < w[1]), "{commits:?}");
    assert!(
        commits.last().unwrap() <= &(until.file.clone(), until.position),
        "{commits:?} until {until:?}"
    );
    assert!(ours.iter().all(|c| c.commit_time > 0));
}

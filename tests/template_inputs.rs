//! Template inputs (issue 14, part 3): what a Router's or ConfigFile's template sees is checked
//! while loading, so no value can end or escape a directive in the rendered file, and names that
//! are valid render exactly as before. Pure: no server, no file written.

use converge::load::{load, SourceTree};
use converge::model::{Kind, Resource, ResourceId};
use converge::render::{render_router, starting_colors};

const PROJECT: &str = "kind: Project\nname: shop\nhosts: [{name: web-1}]\nenvironments: [prod]\n";
const API: &str = "kind: Service\nname: api\nimage: shop/api:1\nports: [{container: 8000}]\n\
    health: {http: {path: /health, port: 8000}}\n\
    deploy: {strategy: blue-green, blue: {port: 8000}, green: {port: 8001}}\n";

fn router(routes: &str) -> String {
    format!("kind: Router\nname: public\npath: /etc/nginx/conf.d/site.conf\nroutes:\n{routes}")
}

fn problems(tree: &SourceTree, env: Option<&str>) -> String {
    match load(tree, env) {
        Ok(_) => panic!("loaded without problems"),
        Err(d) => d.to_string(),
    }
}

/// Rendered by converge before route hosts and paths were checked (the same state, the same
/// template): a wildcard host, a URL path with `:`, `@` and an escape, a one-label host.
const SITE_BEFORE: &str = r#"# Rendered by converge for shop (default). Changes here are overwritten.
# *.example.com/ -> service/web (none)
upstream converge_web_0 {
    server 127.0.0.1:8080;
    keepalive 16;
}

server {
    listen 80;
    keepalive_timeout 0;
    server_name *.example.com;

    location / {
        proxy_pass http://converge_web_0;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error timeout http_502 http_503;
    }
}
# app.example.com/api/v1:x@y/%7Euser/ -> service/api (blue)
upstream converge_api_1 {
    server 127.0.0.1:8000;
    keepalive 16;
}

server {
    listen 80;
    keepalive_timeout 0;
    server_name app.example.com;

    location /api/v1:x@y/%7Euser/ {
        proxy_pass http://converge_api_1;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error timeout http_502 http_503;
    }
}
# localhost/ -> service/web (none)
upstream converge_web_2 {
    server 127.0.0.1:8080;
    keepalive 16;
}

server {
    listen 80;
    keepalive_timeout 0;
    server_name localhost;

    location / {
        proxy_pass http://converge_web_2;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_next_upstream error timeout http_502 http_503;
    }
}
"#;

#[test]
fn valid_wildcard_hosts_and_url_paths_render_the_nginx_site_unchanged() {
    let tree = SourceTree::new("mem").with_file("converge.yaml", STATE);
    let state = load(&tree, None).unwrap_or_else(|d| panic!("{d}"));
    let Some(Resource::Router(r)) = state.get(&ResourceId::new(Kind::Router, "public")) else {
        panic!("router/public")
    };
    let site = render_router(r, &state, &starting_colors(&state)).unwrap();
    assert_eq!(site, SITE_BEFORE);
}

const STATE: &str = r#"kind: Project
name: shop
hosts: [{name: web-1}]
---
kind: Service
name: api
image: shop/api:1
ports: [{container: 8000}]
health: {http: {path: /health, port: 8000}}
deploy: {strategy: blue-green, blue: {port: 8000}, green: {port: 8001}}
---
kind: Service
name: web
image: shop/web:1
ports: [{container: 80, host: 8080}]
---
kind: Router
name: public
path: /etc/nginx/conf.d/site.conf
routes:
  - {host: "*.example.com", service: web}
  - {host: app.example.com, path: "/api/v1:x@y/%7Euser/", service: api}
  - {host: localhost, service: web}
"#;

#[test]
fn the_injection_from_issue_14_is_refused_at_its_file_line_and_column() {
    let routes = "  - host: \"app.example.com;\\n  location /x { return 200 'pwned'; }\\n  #\"\n    service: api\n";
    let tree = SourceTree::new("mem")
        .with_file("converge.yaml", PROJECT)
        .with_file("api.yaml", API)
        .with_file("routing.yaml", router(routes));
    let text = problems(&tree, None);
    assert_eq!(
        text.lines().take(2).collect::<Vec<_>>(),
        [
            "error: route host must be a DNS name, found `;` in `app.example.com;\\n  location /x { return 200 'pwned'; }\\n  #`",
            "  --> mem/routing.yaml:5:11",
        ],
        "{text}"
    );
    assert!(text.ends_with("1 problem found"), "{text}");
}

#[test]
fn every_template_input_is_reported_in_one_run() {
    let tree = SourceTree::new("mem")
        .with_file(
            "converge.yaml",
            "kind: Project\nname: shop\nhosts: [{name: web-1, labels: {zone: \"a;b\"}}]\n",
        )
        .with_file("api.yaml", API.replace("shop/api:1", "\"shop/api:1'\""))
        .with_file(
            "routing.yaml",
            router("  - {host: \"a.example.com:80\", path: \"/a b\", service: api}\n"),
        )
        .with_file(
            "costs.yaml",
            "kind: Budget\nname: monthly\namount: 10\ncurrency: \"{{USD}}\"\n---\n\
             kind: Backup\nname: files\nsource: {files: /srv}\nschedule: \"0 2 * * *\\t\"\n\
             destinations: [{url: \"file:///b\", keep: 1d}]\n",
        );
    let text = problems(&tree, None);
    for expected in [
        "error: label `zone` of host `web-1` contains `;`: `a;b`",
        "error: the image of service/api contains a quote `'`: `shop/api:1'`",
        "error: route host must be a DNS name, found a port (`:80`) in `a.example.com:80`",
        "error: route path must be a URL path, found a space (U+0020) in `/a b`",
        "error: budget currency contains `{`: `{{USD}}`",
        "error: backup schedule contains a tab (U+0009): `0 2 * * *\\t`",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(text.ends_with("6 problems found"), "{text}");
}

#[test]
fn an_environment_override_cannot_bring_in_what_the_base_may_not_hold() {
    let tree = SourceTree::new("mem")
        .with_file("converge.yaml", PROJECT)
        .with_file("api.yaml", API)
        .with_file("routing.yaml", router("  - {host: app.example.com, service: api}\n"))
        .with_file(
            "prod.yaml",
            "kind: Environment\nname: prod\noverrides:\n  router/public:\n    routes: [{host: \"prod.example.com\\n\", service: api}]\n",
        );
    assert!(load(&tree, None).is_ok());
    let text = problems(&tree, Some("prod"));
    assert!(
        text.starts_with("error: route host must be a DNS name, found a newline (U+000A) in `prod.example.com\\n`\n  --> mem/prod.yaml:5:21\n"),
        "{text}"
    );
}

#[test]
fn names_already_constrained_by_their_type_need_no_new_check() {
    // Names (project, environments, hosts, services, backups, budgets, notifiers) are `Name`s:
    // letters, digits, `-`, `_`, `.`. A `;` in one is refused by the type, as before.
    let tree = SourceTree::new("mem")
        .with_file("converge.yaml", "kind: Project\nname: \"shop;x\"\n")
        .with_file("api.yaml", API);
    let text = problems(&tree, None);
    assert!(
        text.contains("expected a name of letters, digits"),
        "{text}"
    );
}

//! The house rules anyone can check without a cluster, read from the source
//! of the operator and the plugin: no import circle between files, no
//! function over 60 lines outside tests, and no `pub use` that gives an item
//! of the crate a second path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

const CRATES: [&str; 2] = ["modelgate", "kubectl-modelgate"];
const MAX_FN_LINES: usize = 60;

/// One source file: its module path (`["approval", "decide"]`) and syntax.
struct Source {
    module: Vec<String>,
    file: PathBuf,
    syntax: syn::File,
}

fn crate_root(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `approval/decide.rs` → `approval::decide`; `mod.rs`, `lib.rs` and
/// `main.rs` name their directory.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(root).expect("under the crate root");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The modules a file declares as `#[cfg(test)] mod name;`, whose own
/// files (and their children) only tests compile.
fn test_modules(module: &[String], syntax: &syn::File) -> Vec<Vec<String>> {
    syntax
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) if m.content.is_none() && is_test_only(&m.attrs) => {
                let mut path = module.to_vec();
                path.push(m.ident.to_string());
                Some(path)
            }
            _ => None,
        })
        .collect()
}

/// The crate's files that are compiled outside tests.
fn sources(name: &str) -> Vec<Source> {
    let all = every_source(name);
    let tests: Vec<Vec<String>> = all
        .iter()
        .flat_map(|s| test_modules(&s.module, &s.syntax))
        .collect();
    all.into_iter()
        .filter(|s| !tests.iter().any(|t| s.module.starts_with(t)))
        .collect()
}

fn every_source(name: &str) -> Vec<Source> {
    let root = crate_root(name);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    files
        .into_iter()
        // A binary's main.rs is its own crate: `crate::` there is not the library.
        .filter(|f| f.file_name().is_some_and(|n| n != "main.rs"))
        .map(|file| {
            let text = std::fs::read_to_string(&file).expect("readable source");
            let syntax = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.display()));
            Source {
                module: module_of(&root, &file),
                // Named from the repository's root, as a reader finds it.
                file: Path::new("crates")
                    .join(name)
                    .join("src")
                    .join(file.strip_prefix(&root).expect("under the crate root")),
                syntax,
            }
        })
        .collect()
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let path = a.path();
        if path.is_ident("test") || path.segments.last().is_some_and(|s| s.ident == "test") {
            return true;
        }
        path.is_ident("cfg")
            && a.parse_args::<syn::Meta>()
                .is_ok_and(|m| m.path().is_ident("test"))
    })
}

/// Collects every path that starts at `crate`, `self` or `super`, in `use`
/// items and in expressions, skipping code that only tests compile.
#[derive(Default)]
struct Imports {
    paths: Vec<Vec<String>>,
}

impl Imports {
    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.record(prefix, Some(n.ident.to_string())),
            syn::UseTree::Rename(r) => self.record(prefix, Some(r.ident.to_string())),
            syn::UseTree::Glob(_) => self.record(prefix, None),
            syn::UseTree::Group(g) => g.items.iter().for_each(|t| self.use_tree(prefix, t)),
        }
    }

    fn record(&mut self, prefix: &[String], last: Option<String>) {
        let mut path = prefix.to_vec();
        path.extend(last);
        if path
            .first()
            .is_some_and(|s| matches!(s.as_str(), "crate" | "self" | "super"))
        {
            self.paths.push(path);
        }
    }
}

impl<'ast> Visit<'ast> for Imports {
    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        if !is_test_only(&item.attrs) {
            self.use_tree(&mut Vec::new(), &item.tree);
        }
    }
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_fn(self, item);
        }
    }
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        self.record(&segments, None);
        syn::visit::visit_path(self, path);
    }
}

/// The file a path from `module` lands in: the longest prefix of the
/// absolute path that is a module of the crate.
fn target(
    module: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let (mut absolute, rest) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (module.to_vec(), &path[1..]),
        _ => (module.to_vec(), path),
    };
    for segment in rest {
        if segment == "super" {
            absolute.pop();
        } else {
            absolute.push(segment.clone());
        }
    }
    (0..=absolute.len())
        .rev()
        .map(|n| absolute[..n].to_vec())
        .find(|m| modules.contains(m))
}

fn import_graph(sources: &[Source]) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|s| s.module.clone()).collect();
    let mut graph = BTreeMap::new();
    for source in sources {
        let mut imports = Imports::default();
        imports.visit_file(&source.syntax);
        let edges: BTreeSet<Vec<String>> = imports
            .paths
            .iter()
            .filter_map(|p| target(&source.module, p, &modules))
            .filter(|t| *t != source.module)
            .collect();
        graph.insert(source.module.clone(), edges);
    }
    graph
}

/// Every strongly connected group of more than one file (Tarjan's algorithm
/// would do; the graphs are small enough for reachability sets).
fn circles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    todo.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<_, _> = graph.keys().map(|m| (m.clone(), reach(m))).collect();
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for (m, seen) in &reachable {
        let group: Vec<String> = seen
            .iter()
            .filter(|other| reachable[*other].contains(m))
            .map(|other| other.join("::"))
            .collect();
        if group.len() > 1 {
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut found = Vec::new();
    for krate in CRATES {
        for group in circles(&import_graph(&sources(krate))) {
            let group: Vec<String> = group
                .iter()
                .map(|m| {
                    if m.is_empty() {
                        "crate".into()
                    } else {
                        m.clone()
                    }
                })
                .collect();
            found.push(format!("{krate}: {}", group.join(" ↔ ")));
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

/// Functions and methods outside tests, with their length in lines.
#[derive(Default)]
struct Lengths {
    long: Vec<(String, usize)>,
}

impl Lengths {
    fn check(&mut self, attrs: &[syn::Attribute], sig: &syn::Signature, block: &syn::Block) {
        if is_test_only(attrs) {
            return;
        }
        let start = sig.fn_token.span.start().line;
        let end = block.brace_token.span.close().end().line;
        let lines = end.saturating_sub(start) + 1;
        if lines > MAX_FN_LINES {
            self.long.push((sig.ident.to_string(), lines));
        }
    }
}

impl<'ast> Visit<'ast> for Lengths {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if !is_test_only(&item.attrs) {
            syn::visit::visit_item_mod(self, item);
        }
    }
    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.check(&item.attrs, &item.sig, &item.block);
        syn::visit::visit_item_fn(self, item);
    }
    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.check(&item.attrs, &item.sig, &item.block);
        syn::visit::visit_impl_item_fn(self, item);
    }
}

#[test]
fn no_function_outside_tests_is_longer_than_sixty_lines() {
    let mut found = Vec::new();
    for krate in CRATES {
        for source in sources(krate) {
            let mut lengths = Lengths::default();
            lengths.visit_file(&source.syntax);
            for (function, lines) in lengths.long {
                found.push(format!(
                    "{krate}: {}::{function} ({lines} lines, {})",
                    name(&source.module),
                    source.file.display()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "functions over {MAX_FN_LINES} lines:\n{}",
        found.join("\n")
    );
}

/// `pub use` of a path inside the crate (`crate::`, `self::`, `super::` or a
/// child module): the item already has a path, this gives it another.
fn second_paths(source: &Source) -> Vec<String> {
    let children: BTreeSet<String> = source
        .syntax
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Mod(m) => Some(m.ident.to_string()),
            _ => None,
        })
        .collect();
    source
        .syntax
        .items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Use(u) if matches!(u.vis, syn::Visibility::Public(_)) => Some(u),
            _ => None,
        })
        .filter(|u| {
            let first = match &u.tree {
                syn::UseTree::Path(p) => p.ident.to_string(),
                syn::UseTree::Name(n) => n.ident.to_string(),
                _ => String::new(),
            };
            matches!(first.as_str(), "crate" | "self" | "super") || children.contains(&first)
        })
        .map(|u| {
            let line = u.use_token.span.start().line;
            format!("{}:{line}", source.file.display())
        })
        .collect()
}

#[test]
fn no_item_of_the_crate_is_given_a_second_path() {
    let found: Vec<String> = CRATES
        .iter()
        .flat_map(|krate| sources(krate))
        .flat_map(|source| second_paths(&source))
        .collect();
    assert!(
        found.is_empty(),
        "`pub use` of the crate's own items:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checks_see_what_they_look_for() {
    // The rules would pass vacuously if nothing were read: make sure they
    // find a circle, a long function and a second path when there is one.
    let parse = |module: &[&str], text: &str| Source {
        module: module.iter().map(|s| s.to_string()).collect(),
        file: PathBuf::from(format!("{}.rs", module.join("/"))),
        syntax: syn::parse_file(text).expect("fixture parses"),
    };
    let pair = [
        parse(&["a"], "use crate::b::f; pub fn g() {}"),
        parse(&["b"], "pub fn f() { super::a::g() }"),
        parse(&["c"], "use crate::a::g;"),
    ];
    assert_eq!(
        circles(&import_graph(&pair)),
        vec![vec!["a".to_string(), "b".to_string()]]
    );

    let body = "let _x = 1;\n".repeat(MAX_FN_LINES);
    let long = parse(
        &["d"],
        &format!("fn long() {{\n{body}}}\n#[cfg(test)] mod tests {{ fn t() {{\n{body}}} }}"),
    );
    let mut lengths = Lengths::default();
    lengths.visit_file(&long.syntax);
    assert_eq!(lengths.long, vec![("long".to_string(), MAX_FN_LINES + 2)]);

    let facade = parse(
        &["e"],
        "pub mod inner; pub use inner::Thing; pub use serde::Serialize;",
    );
    assert_eq!(second_paths(&facade).len(), 1);
    let parent = parse(&["f"], "#[cfg(test)] mod tests; mod real;");
    assert_eq!(
        test_modules(&parent.module, &parent.syntax),
        vec![vec!["f".to_string(), "tests".to_string()]],
        "only the test module's file is left out"
    );
    assert!(crate_root("modelgate").join("lib.rs").exists());
    assert!(
        sources("modelgate").len() > 20,
        "the operator's sources are read"
    );
}

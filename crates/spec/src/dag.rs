//! The step graph: sources -> transforms -> sinks -> crawlers, checked and ordered with petgraph.

use std::collections::BTreeMap;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use crate::types::Pipeline;

/// The four kinds of step, in the order data flows through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepKind {
    /// Reads data.
    Source,
    /// Reshapes batches.
    Transform,
    /// Writes data.
    Sink,
    /// Catalogues what sinks wrote.
    Crawler,
}

impl StepKind {
    /// The spec section holding steps of this kind.
    pub fn section(self) -> &'static str {
        match self {
            StepKind::Source => "sources",
            StepKind::Transform => "transforms",
            StepKind::Sink => "sinks",
            StepKind::Crawler => "crawlers",
        }
    }

    /// The kinds a step of this kind may read from.
    pub fn accepts(self) -> &'static [StepKind] {
        match self {
            StepKind::Source => &[],
            StepKind::Transform | StepKind::Sink => &[StepKind::Source, StepKind::Transform],
            StepKind::Crawler => &[StepKind::Sink],
        }
    }

    /// Singular noun for messages.
    pub fn noun(self) -> &'static str {
        match self {
            StepKind::Source => "source",
            StepKind::Transform => "transform",
            StepKind::Sink => "sink",
            StepKind::Crawler => "crawler",
        }
    }
}

/// A step as the graph sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRef {
    /// The step's name (unique across sections).
    pub name: String,
    /// Which section it is in.
    pub kind: StepKind,
    /// The step's `type`.
    pub step_type: String,
    /// Upstream steps.
    pub inputs: Vec<String>,
}

/// A problem with the graph, with the spec path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DagError {
    /// What kind of problem, for callers that filter (see `validate`'s partial checks).
    pub kind: DagErrorKind,
    /// Path segments (section, step, key, index) locating the problem.
    pub path: Vec<String>,
    /// Index into `inputs` when the problem is one input.
    pub input_index: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub help: Option<String>,
}

/// The kinds of graph problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DagErrorKind {
    /// Two steps share a name.
    DuplicateName,
    /// A step that needs inputs has none.
    EmptyInputs,
    /// An input names no step (the name is carried).
    UnknownInput(String),
    /// An input is of a kind the step cannot read.
    WrongKind,
    /// An input is listed twice.
    DuplicateInput,
    /// Steps form a cycle.
    Cycle,
    /// A source or transform nobody reads.
    Unread,
    /// No sources at all.
    NoSources,
}

/// A checked graph with its steps in an order where every step comes after its inputs.
#[derive(Debug, Clone)]
pub struct Dag {
    graph: DiGraph<StepRef, ()>,
    order: Vec<NodeIndex>,
}

/// Every step of a pipeline, in section order then name order.
pub fn steps(pipeline: &Pipeline) -> Vec<StepRef> {
    let step = |name: &String, kind: StepKind, step_type: &str, inputs: &[String]| StepRef {
        name: name.clone(),
        kind,
        step_type: step_type.to_owned(),
        inputs: inputs.to_vec(),
    };
    let mut steps = Vec::new();
    for (name, s) in &pipeline.sources {
        steps.push(step(name, StepKind::Source, s.type_name(), &[]));
    }
    for (name, t) in &pipeline.transforms {
        steps.push(step(name, StepKind::Transform, t.type_name(), t.inputs()));
    }
    for (name, s) in &pipeline.sinks {
        steps.push(step(name, StepKind::Sink, s.type_name(), s.inputs()));
    }
    for (name, c) in &pipeline.crawlers {
        steps.push(step(name, StepKind::Crawler, c.type_name(), c.inputs()));
    }
    steps
}

impl Dag {
    /// Builds and checks the graph: every error at once (dangling inputs, wrong kinds, cycles,
    /// steps whose data goes nowhere).
    pub fn build(pipeline: &Pipeline) -> Result<Dag, Vec<DagError>> {
        let all = steps(pipeline);
        let mut errors = Vec::new();
        let mut graph = DiGraph::new();
        let mut index: BTreeMap<String, NodeIndex> = BTreeMap::new();
        // A step whose name was taken earlier is left out of the graph, so its inputs are not
        // attributed to the step that owns the name (which would invent cycles and kind errors).
        let mut duplicate = vec![false; all.len()];
        for (position, step) in all.iter().enumerate() {
            if let Some(&other) = index.get(&step.name) {
                duplicate[position] = true;
                let first: &StepRef = &graph[other];
                errors.push(DagError {
                kind: DagErrorKind::DuplicateName,
                    path: vec![step.kind.section().to_owned(), step.name.clone()],
                    input_index: None,
                    message: format!(
                        "step name `{}` is used twice (also in `{}`); inputs could not tell them apart",
                        step.name,
                        first.kind.section()
                    ),
                    help: Some("give every step a name of its own".to_owned()),
                });
                continue;
            }
            index.insert(step.name.clone(), graph.add_node(step.clone()));
        }
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        // Steps a misspelled input probably meant: they are not also reported as unread.
        let mut meant: Vec<&str> = Vec::new();
        for (position, step) in all.iter().enumerate() {
            let Some(&to) = index.get(&step.name).filter(|_| !duplicate[position]) else {
                continue;
            };
            if step.kind != StepKind::Source && step.inputs.is_empty() {
                errors.push(DagError {
                    kind: DagErrorKind::EmptyInputs,
                    path: inputs_path(step),
                    input_index: None,
                    message: "`inputs` is empty; this step would never receive data".to_owned(),
                    help: Some(format!(
                        "name at least one {} to read from",
                        expected_kinds(step.kind)
                    )),
                });
            }
            for (i, input) in step.inputs.iter().enumerate() {
                let path = inputs_path(step);
                let Some(&from) = index.get(input) else {
                    let help = match crate::diag::did_you_mean(input, names.iter().copied()) {
                        Some(g) => {
                            meant.push(g);
                            format!("did you mean `{g}`?")
                        }
                        None => format!("steps defined: {}", names.join(", ")),
                    };
                    errors.push(DagError {
                        kind: DagErrorKind::UnknownInput(input.clone()),
                        path,
                        input_index: Some(i),
                        message: format!("input `{input}` is not a step in this pipeline"),
                        help: Some(help),
                    });
                    continue;
                };
                let from_kind = graph[from].kind;
                if !step.kind.accepts().contains(&from_kind) {
                    errors.push(DagError {
                        kind: DagErrorKind::WrongKind,
                        path,
                        input_index: Some(i),
                        message: format!(
                            "a {} cannot read from {} `{input}`",
                            step.kind.noun(),
                            from_kind.noun()
                        ),
                        help: Some(format!(
                            "a {} reads from a {}",
                            step.kind.noun(),
                            expected_kinds(step.kind)
                        )),
                    });
                    continue;
                }
                if step.inputs[..i].contains(input) {
                    errors.push(DagError {
                        kind: DagErrorKind::DuplicateInput,
                        path,
                        input_index: Some(i),
                        message: format!(
                            "input `{input}` is listed twice; its data would arrive twice"
                        ),
                        help: Some("list each input once".to_owned()),
                    });
                    continue;
                }
                graph.add_edge(from, to, ());
            }
        }
        for component in tarjan_scc(&graph) {
            let is_cycle =
                component.len() > 1 || component.iter().any(|n| graph.contains_edge(*n, *n));
            if !is_cycle {
                continue;
            }
            let mut names: Vec<String> = component.iter().map(|n| graph[*n].name.clone()).collect();
            names.sort();
            let cycle = cycle_path(&graph, &component);
            let first = &graph[component[0]];
            errors.push(DagError {
                kind: DagErrorKind::Cycle,
                path: inputs_path(first),
                input_index: None,
                message: format!("steps form a cycle: {cycle}"),
                help: Some("data must flow one way; remove one of these inputs".to_owned()),
            });
        }
        for n in graph.node_indices() {
            let step = &graph[n];
            let consumed = graph
                .neighbors_directed(n, petgraph::Direction::Outgoing)
                .next()
                .is_some();
            if matches!(step.kind, StepKind::Source | StepKind::Transform)
                && !consumed
                && !meant.contains(&step.name.as_str())
            {
                errors.push(DagError {
                    kind: DagErrorKind::Unread,
                    path: vec![step.kind.section().to_owned(), step.name.clone()],
                    input_index: None,
                    message: format!(
                        "{} `{}` is not read by any step; its data would go nowhere",
                        step.kind.noun(),
                        step.name
                    ),
                    help: Some(format!(
                        "add `{}` to the `inputs` of a transform or sink, or remove it",
                        step.name
                    )),
                });
            }
        }
        if all.iter().all(|s| s.kind != StepKind::Source) {
            errors.push(DagError {
                kind: DagErrorKind::NoSources,
                path: vec![],
                input_index: None,
                message: "the pipeline has no sources".to_owned(),
                help: Some("add a step under `sources:`".to_owned()),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let order = toposort(&graph, None).map_err(|_| Vec::new())?;
        Ok(Dag { graph, order })
    }

    /// Steps in execution order: every step after all of its inputs.
    pub fn ordered(&self) -> impl Iterator<Item = &StepRef> {
        self.order.iter().map(|n| &self.graph[*n])
    }

    /// Steps that read from `name`.
    pub fn consumers(&self, name: &str) -> Vec<&StepRef> {
        let Some(n) = self
            .graph
            .node_indices()
            .find(|n| self.graph[*n].name == name)
        else {
            return Vec::new();
        };
        let mut out: Vec<&StepRef> = self
            .graph
            .neighbors_directed(n, petgraph::Direction::Outgoing)
            .map(|m| &self.graph[m])
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepRef> {
        self.graph.node_weights().find(|s| s.name == name)
    }
}

fn expected_kinds(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Crawler => "sink",
        _ => "source or transform",
    }
}

/// Names a cycle as `a -> b -> a`, following edges inside one strongly connected component.
fn cycle_path(graph: &DiGraph<StepRef, ()>, component: &[NodeIndex]) -> String {
    let start = *component
        .iter()
        .min_by(|a, b| graph[**a].name.cmp(&graph[**b].name))
        .unwrap_or(&component[0]);
    let mut path = vec![start];
    let mut current = start;
    while path.len() <= component.len() {
        let next = graph
            .neighbors_directed(current, petgraph::Direction::Outgoing)
            .filter(|n| component.contains(n))
            .min_by(|a, b| graph[*a].name.cmp(&graph[*b].name));
        let Some(next) = next else { break };
        path.push(next);
        if next == start {
            break;
        }
        current = next;
    }
    path.iter()
        .map(|n| graph[*n].name.as_str())
        .collect::<Vec<_>>()
        .join(" -> ")
}
/// The spec path of a step's `inputs` (`sinks.<name>.inputs`), where input errors point.
fn inputs_path(step: &StepRef) -> Vec<String> {
    vec![
        step.kind.section().to_owned(),
        step.name.clone(),
        "inputs".to_owned(),
    ]
}

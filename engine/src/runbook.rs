//! What a runbook declared for one host: its operations in stages, its handlers, and
//! which operations notify which handler. Built while the script runs (the stdlib's
//! `stage`, `handler` and `notify` shape it), planned and applied afterwards.
//!
//! Operations declared outside any `stage(...)` block form unnamed stages in script
//! order (`main`, then `after NAME` for those following stage `NAME`), so a script
//! without stages is one stage, as before.

use std::sync::Arc;

use crate::plan::Operation;
use crate::scheduler::StageOptions;

/// One stage of a host's runbook.
#[derive(Debug, Clone)]
pub struct StageDecl {
    /// The stage's name; stages of the same name on different hosts run together.
    pub name: String,
    /// How the stage runs; `None` for unnamed stages (the run's defaults apply).
    pub options: Option<StageOptions>,
    /// The stage's operations, in script order.
    pub operations: Vec<Declared>,
}

/// An operation and the handlers it notifies when it changes something.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The operation.
    pub operation: Arc<dyn Operation>,
    /// Names of the handlers to run, at the end of the stage, if it changed something.
    pub notify: Vec<String>,
}

/// Operations that run on a host only when notified, once per stage that notified them.
#[derive(Debug, Clone)]
pub struct HandlerDecl {
    /// The name `notify` uses.
    pub name: String,
    /// Its operations, in script order.
    pub operations: Vec<Arc<dyn Operation>>,
}

/// Where a declared operation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Target {
    /// Outside any block: the last stage if it is unnamed, else a new unnamed one.
    #[default]
    TopLevel,
    /// Inside `stage(...)`: the last stage.
    Stage,
    /// Inside `handler(...)`: that handler.
    Handler(usize),
}

/// Everything one host's runbook declared.
#[derive(Debug, Clone, Default)]
pub struct Runbook {
    /// Stages in script order.
    pub stages: Vec<StageDecl>,
    /// Handlers, in the order they were defined.
    pub handlers: Vec<HandlerDecl>,
    target: Target,
}

impl Runbook {
    /// Add `operation` where the script is (a stage block, a handler block, or the top).
    pub fn add(&mut self, operation: Arc<dyn Operation>) {
        match self.target {
            Target::Handler(index) => self.handlers[index].operations.push(operation),
            Target::Stage => self.last_stage().operations.push(Declared {
                operation,
                notify: Vec::new(),
            }),
            Target::TopLevel => {
                let unnamed = self.stages.last().is_some_and(|s| s.options.is_none());
                if !unnamed {
                    let name = match self.stages.last() {
                        Some(stage) => format!("after {}", stage.name),
                        None => "main".to_owned(),
                    };
                    self.stages.push(StageDecl {
                        name,
                        options: None,
                        operations: Vec::new(),
                    });
                }
                self.last_stage().operations.push(Declared {
                    operation,
                    notify: Vec::new(),
                });
            }
        }
    }

    fn last_stage(&mut self) -> &mut StageDecl {
        if self.stages.is_empty() {
            self.stages.push(StageDecl {
                name: "main".into(),
                options: None,
                operations: Vec::new(),
            });
        }
        let last = self.stages.len() - 1;
        &mut self.stages[last]
    }

    /// Begin stage `name`: operations go to it until [`Runbook::end_block`].
    pub fn begin_stage(&mut self, name: &str, options: StageOptions) -> Result<(), String> {
        self.top_level("stage")?;
        if self.stages.iter().any(|s| s.name == name) {
            return Err(format!(
                "stage `{name}` is declared twice; give each stage its own name"
            ));
        }
        self.stages.push(StageDecl {
            name: name.to_owned(),
            options: Some(options),
            operations: Vec::new(),
        });
        self.target = Target::Stage;
        Ok(())
    }

    /// Begin handler `name`: operations go to it until [`Runbook::end_block`].
    pub fn begin_handler(&mut self, name: &str) -> Result<(), String> {
        self.top_level("handler")?;
        if self.handlers.iter().any(|h| h.name == name) {
            return Err(format!("handler `{name}` is defined twice"));
        }
        self.handlers.push(HandlerDecl {
            name: name.to_owned(),
            operations: Vec::new(),
        });
        self.target = Target::Handler(self.handlers.len() - 1);
        Ok(())
    }

    /// Leave the current `stage` or `handler` block.
    pub fn end_block(&mut self) {
        self.target = Target::TopLevel;
    }

    fn top_level(&self, what: &str) -> Result<(), String> {
        match self.target {
            Target::TopLevel => Ok(()),
            Target::Stage => Err(format!(
                "`{what}` inside a stage block: stages and handlers do not nest"
            )),
            Target::Handler(_) => Err(format!(
                "`{what}` inside a handler block: stages and handlers do not nest"
            )),
        }
    }

    /// Make the operation declared last notify handler `name` when it changes something.
    pub fn notify_last(&mut self, name: &str) -> Result<(), String> {
        if let Target::Handler(_) = self.target {
            return Err("`notify` inside a handler: handlers do not notify handlers".into());
        }
        let last = self
            .stages
            .last_mut()
            .and_then(|s| s.operations.last_mut())
            .ok_or("`notify` must follow the operation that notifies, and none was declared")?;
        if !last.notify.iter().any(|n| n == name) {
            last.notify.push(name.to_owned());
        }
        Ok(())
    }

    /// Check what only the whole script can tell: every notified handler is defined.
    pub fn check(&self) -> Result<(), String> {
        for stage in &self.stages {
            for declared in &stage.operations {
                for name in &declared.notify {
                    if self.handler(name).is_none() {
                        let known: Vec<&str> =
                            self.handlers.iter().map(|h| h.name.as_str()).collect();
                        let hint = if known.is_empty() {
                            "no handler is defined; define it with `handler(NAME, || { ... })`"
                                .to_owned()
                        } else {
                            format!("defined: {}", known.join(", "))
                        };
                        return Err(format!(
                            "`{}` on `{}` notifies handler `{name}`, which is not defined ({hint})",
                            declared.operation.name(),
                            declared.operation.target()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The handler named `name`.
    pub fn handler(&self, name: &str) -> Option<&HandlerDecl> {
        self.handlers.iter().find(|h| h.name == name)
    }

    /// Every stage operation, in order (handlers excluded).
    pub fn operations(&self) -> impl Iterator<Item = &Arc<dyn Operation>> {
        self.stages
            .iter()
            .flat_map(|s| s.operations.iter().map(|d| &d.operation))
    }

    /// Whether the runbook declared nothing.
    pub fn is_empty(&self) -> bool {
        self.stages.iter().all(|s| s.operations.is_empty())
    }

    /// Operations declared in stages (handlers left out).
    pub fn len(&self) -> usize {
        self.stages.iter().map(|s| s.operations.len()).sum()
    }

    /// Add what `later` declared after what this runbook declared, as if one script had
    /// declared both (the console gathers a host's runbook over several lines): a stage
    /// of a name already here takes the new operations at its end, other stages follow,
    /// and a handler of a name already here is replaced by the later definition.
    pub fn append(&mut self, later: Runbook) {
        for stage in later.stages {
            match self.stages.iter_mut().find(|s| s.name == stage.name) {
                Some(same) => same.operations.extend(stage.operations),
                None => self.stages.push(stage),
            }
        }
        for handler in later.handlers {
            match self.handlers.iter_mut().find(|h| h.name == handler.name) {
                Some(same) => *same = handler,
                None => self.handlers.push(handler),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{FactQuery, Facts};
    use crate::plan::Outcome;

    #[derive(Debug)]
    struct Op(&'static str);
    impl Operation for Op {
        fn name(&self) -> &str {
            "test::op"
        }
        fn target(&self) -> &str {
            self.0
        }
        fn facts(&self) -> Vec<FactQuery> {
            Vec::new()
        }
        fn plan(&self, _: &mut Facts) -> Result<Outcome, String> {
            Err("not planned here".into())
        }
    }

    fn targets(stage: &StageDecl) -> Vec<&str> {
        stage
            .operations
            .iter()
            .map(|d| d.operation.target())
            .collect()
    }

    #[test]
    fn operations_outside_blocks_form_unnamed_stages_in_order() {
        let mut book = Runbook::default();
        book.add(Arc::new(Op("a")));
        book.begin_stage("deploy", StageOptions::default())
            .expect("stage");
        book.add(Arc::new(Op("b")));
        book.end_block();
        book.begin_handler("restart").expect("handler");
        book.add(Arc::new(Op("h")));
        book.end_block();
        book.add(Arc::new(Op("c")));
        book.add(Arc::new(Op("d")));
        let names: Vec<&str> = book.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["main", "deploy", "after deploy"]);
        assert_eq!(targets(&book.stages[2]), ["c", "d"]);
        assert_eq!(book.handlers[0].operations.len(), 1);
        assert_eq!(book.operations().count(), 4);
    }

    #[test]
    fn notify_marks_the_last_operation_and_unknown_handlers_are_reported() {
        let mut book = Runbook::default();
        assert!(book.notify_last("x").is_err(), "nothing declared yet");
        book.add(Arc::new(Op("/etc/app.conf")));
        book.notify_last("restart app").expect("notify");
        let err = book.check().expect_err("undefined handler");
        assert!(
            err.contains("notifies handler `restart app`") && err.contains("/etc/app.conf"),
            "{err}"
        );
        book.begin_handler("restart app").expect("handler");
        book.end_block();
        book.check().expect("defined now");
    }

    #[test]
    fn blocks_do_not_nest_and_names_are_unique() {
        let mut book = Runbook::default();
        book.begin_stage("s", StageOptions::default())
            .expect("stage");
        assert!(book.begin_handler("h").is_err());
        assert!(book.begin_stage("t", StageOptions::default()).is_err());
        book.end_block();
        assert!(book.begin_stage("s", StageOptions::default()).is_err());
    }
}

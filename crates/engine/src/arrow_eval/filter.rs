//! Filter conditions compiled once against the input schema: column names resolved, operand
//! types unified, literals converted and constant parts folded, so per batch only Arrow kernels
//! run.

use std::fmt;
use std::sync::Arc;

use super::cast::{arrow_message, strict_cast_options};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Datum, Float64Array, Int64Array, RecordBatch,
    RecordBatchOptions, StringArray, new_empty_array,
};
use arrow::compute::kernels::cmp;
use arrow::compute::kernels::comparison::{like, nlike};
use arrow::compute::kernels::numeric;
use arrow::compute::{
    and_kleene, cast_with_options, is_not_null, is_null, not, or_kleene, prep_null_mask_filter,
};
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit as ArrowTimeUnit};
use arrow::error::ArrowError;
use pipectl_spec::lang::expr::{ArithOp, CompareOp, Expr, Literal, closest_name};

/// A problem compiling or evaluating a filter condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
}

impl EvalError {
    fn new(message: impl Into<String>) -> Self {
        EvalError {
            message: message.into(),
            help: None,
        }
    }

    fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    fn arrow(context: &str, error: ArrowError) -> Self {
        EvalError::new(format!("{context}: {}", arrow_message(&error)))
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

/// A compiled filter condition: checks column names/types against the schema once, then
/// evaluates batches.
#[derive(Debug)]
pub struct CompiledFilter {
    condition: Condition,
    /// Columns read, with the position and type they had at compile time.
    inputs: Vec<(usize, String, DataType)>,
}

impl CompiledFilter {
    /// Resolves the condition's columns in `schema` and type-checks it.
    ///
    /// Fails on an unknown column (naming it, a likely intended one, and the available ones), on
    /// operands that cannot be compared (naming both with their types), on literals that do not
    /// convert to the type they are compared with, and on non-boolean conditions.
    pub fn new(expr: &Expr, schema: &SchemaRef) -> Result<Self, EvalError> {
        let mut compiler = Compiler {
            schema,
            inputs: Vec::new(),
        };
        let condition = compiler.condition(expr)?;
        Ok(CompiledFilter {
            condition,
            inputs: compiler.inputs,
        })
    }

    /// Rows where the condition is true (NULL counts as false, SQL semantics).
    ///
    /// The result has no nulls and one entry per row of `batch`.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, EvalError> {
        let schema = batch.schema();
        for (index, name, data_type) in &self.inputs {
            let matches = schema
                .fields()
                .get(*index)
                .is_some_and(|field| field.name() == name && field.data_type() == data_type);
            if !matches {
                return Err(EvalError::new(format!(
                    "the batch does not have column `{name}` ({data_type}) where the filter \
                     expects it; its schema changed after the filter was compiled"
                )));
            }
        }
        let result = self.condition.evaluate(batch)?;
        Ok(if result.null_count() > 0 {
            prep_null_mask_filter(&result)
        } else {
            result
        })
    }

    /// The compiled condition's input columns, as (position in the schema, name).
    pub fn input_columns(&self) -> impl Iterator<Item = (usize, &str)> {
        self.inputs
            .iter()
            .map(|(index, name, _)| (*index, name.as_str()))
    }
}

/// A value: one per row, or one constant.
#[derive(Debug)]
enum Value {
    Column(usize),
    /// A one-element array standing for every row.
    Constant(ArrayRef),
    Cast {
        inner: Box<Value>,
        to: DataType,
    },
    Arith {
        op: ArithOp,
        left: Box<Value>,
        right: Box<Value>,
    },
    Negate(Box<Value>),
    /// A condition used as a value, e.g. `(a > 1) = flag`.
    Condition(Box<Condition>),
}

/// A true/false/null per row.
#[derive(Debug)]
enum Condition {
    Const(Option<bool>),
    /// A Boolean-typed value.
    Value(Value),
    Compare {
        op: CompareOp,
        left: Value,
        right: Value,
    },
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    IsNull {
        value: Value,
        negated: bool,
    },
    Like {
        value: Value,
        pattern: ArrayRef,
        negated: bool,
    },
}

/// A one-element array that kernels apply to every row (like Arrow's `Scalar`, without its
/// length assertion, which would panic rather than report).
#[derive(Debug)]
struct Broadcast(ArrayRef);

impl Datum for Broadcast {
    fn get(&self) -> (&dyn Array, bool) {
        (self.0.as_ref(), true)
    }
}

/// An evaluated value: a full column or a constant to broadcast.
enum Evaluated {
    Array(ArrayRef),
    Scalar(Broadcast),
}

impl Evaluated {
    fn datum(&self) -> &dyn Datum {
        match self {
            Evaluated::Array(array) => array,
            Evaluated::Scalar(scalar) => scalar,
        }
    }

    fn array(&self) -> &ArrayRef {
        match self {
            Evaluated::Array(array) => array,
            Evaluated::Scalar(scalar) => &scalar.0,
        }
    }

    fn map(
        self,
        f: impl FnOnce(&ArrayRef) -> Result<ArrayRef, ArrowError>,
    ) -> Result<Self, ArrowError> {
        Ok(match self {
            Evaluated::Array(array) => Evaluated::Array(f(&array)?),
            Evaluated::Scalar(scalar) => Evaluated::Scalar(Broadcast(f(&scalar.0)?)),
        })
    }
}

impl Value {
    fn is_constant(&self) -> bool {
        match self {
            Value::Column(_) => false,
            Value::Constant(_) => true,
            Value::Cast { inner, .. } | Value::Negate(inner) => inner.is_constant(),
            Value::Arith { left, right, .. } => left.is_constant() && right.is_constant(),
            Value::Condition(condition) => condition.is_constant(),
        }
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<Evaluated, EvalError> {
        match self {
            Value::Column(index) => batch
                .columns()
                .get(*index)
                .map(|column| Evaluated::Array(Arc::clone(column)))
                .ok_or_else(|| EvalError::new(format!("the batch has no column {index}"))),
            Value::Constant(array) => Ok(Evaluated::Scalar(Broadcast(Arc::clone(array)))),
            Value::Cast { inner, to } => inner
                .evaluate(batch)?
                .map(|array| cast_with_options(array, to, &strict_cast_options()))
                .map_err(|error| EvalError::arrow(&format!("cannot convert to {to}"), error)),
            Value::Arith { op, left, right } => {
                let left = left.evaluate(batch)?;
                let right = right.evaluate(batch)?;
                let kernel = arith_kernel(*op);
                let result = kernel(left.datum(), right.datum()).map_err(|error| {
                    EvalError::arrow(&format!("arithmetic '{}' failed", op.symbol()), error)
                })?;
                Ok(
                    if matches!(left, Evaluated::Scalar(_)) && matches!(right, Evaluated::Scalar(_))
                    {
                        Evaluated::Scalar(Broadcast(result))
                    } else {
                        Evaluated::Array(result)
                    },
                )
            }
            Value::Negate(inner) => inner
                .evaluate(batch)?
                .map(|array| numeric::neg(array.as_ref()))
                .map_err(|error| EvalError::arrow("negation failed", error)),
            Value::Condition(condition) => {
                Ok(Evaluated::Array(Arc::new(condition.evaluate(batch)?)))
            }
        }
    }
}

type ArithKernel = fn(&dyn Datum, &dyn Datum) -> Result<ArrayRef, ArrowError>;

fn arith_kernel(op: ArithOp) -> ArithKernel {
    match op {
        ArithOp::Add => numeric::add,
        ArithOp::Sub => numeric::sub,
        ArithOp::Mul => numeric::mul,
        ArithOp::Div => numeric::div,
    }
}

type CompareKernel = fn(&dyn Datum, &dyn Datum) -> Result<BooleanArray, ArrowError>;

fn compare_kernel(op: CompareOp) -> CompareKernel {
    match op {
        CompareOp::Eq => cmp::eq,
        CompareOp::NotEq => cmp::neq,
        CompareOp::Lt => cmp::lt,
        CompareOp::LtEq => cmp::lt_eq,
        CompareOp::Gt => cmp::gt,
        CompareOp::GtEq => cmp::gt_eq,
    }
}

/// `condition`, or its negation when `negated` (`NOT IN`, `NOT BETWEEN`).
fn negated_if(negated: bool, condition: Condition) -> Condition {
    if negated {
        Condition::Not(Box::new(condition))
    } else {
        condition
    }
}

impl Condition {
    fn is_constant(&self) -> bool {
        match self {
            Condition::Const(_) => true,
            Condition::Value(value)
            | Condition::IsNull { value, .. }
            | Condition::Like { value, .. } => value.is_constant(),
            Condition::Compare { left, right, .. } => left.is_constant() && right.is_constant(),
            Condition::And(items) | Condition::Or(items) => items.iter().all(Self::is_constant),
            Condition::Not(inner) => inner.is_constant(),
        }
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<BooleanArray, EvalError> {
        let rows = batch.num_rows();
        let result = match self {
            Condition::Const(Some(value)) => BooleanArray::from(vec![*value; rows]),
            Condition::Const(None) => BooleanArray::new_null(rows),
            Condition::Value(value) => {
                let evaluated = value.evaluate(batch)?;
                let array = broadcast(evaluated.array(), rows)?;
                array
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .cloned()
                    .ok_or_else(|| {
                        EvalError::new(format!(
                            "expected a true/false value, got {}",
                            array.data_type()
                        ))
                    })?
            }
            Condition::Compare { op, left, right } => {
                let left = left.evaluate(batch)?;
                let right = right.evaluate(batch)?;
                let result = compare_kernel(*op)(left.datum(), right.datum()).map_err(|error| {
                    EvalError::arrow(&format!("comparison '{}' failed", op.symbol()), error)
                })?;
                broadcast_bool(result, rows)?
            }
            Condition::And(items) | Condition::Or(items) => {
                let combine = if matches!(self, Condition::And(_)) {
                    and_kleene
                } else {
                    or_kleene
                };
                let mut combined: Option<BooleanArray> = None;
                for item in items {
                    let next = item.evaluate(batch)?;
                    combined = Some(match combined {
                        None => next,
                        Some(so_far) => combine(&so_far, &next)
                            .map_err(|error| EvalError::arrow("and/or failed", error))?,
                    });
                }
                combined.unwrap_or_else(|| {
                    BooleanArray::from(vec![matches!(self, Condition::And(_)); rows])
                })
            }
            Condition::Not(inner) => not(&inner.evaluate(batch)?)
                .map_err(|error| EvalError::arrow("not failed", error))?,
            Condition::IsNull { value, negated } => {
                let evaluated = value.evaluate(batch)?;
                let array = evaluated.array();
                let result = if *negated {
                    is_not_null(array.as_ref())
                } else {
                    is_null(array.as_ref())
                }
                .map_err(|error| EvalError::arrow("null test failed", error))?;
                broadcast_bool(result, rows)?
            }
            Condition::Like {
                value,
                pattern,
                negated,
            } => {
                let evaluated = value.evaluate(batch)?;
                let pattern = Broadcast(Arc::clone(pattern));
                let kernel = if *negated { nlike } else { like };
                let result = kernel(evaluated.datum(), &pattern)
                    .map_err(|error| EvalError::arrow("like failed", error))?;
                broadcast_bool(result, rows)?
            }
        };
        if result.len() != rows {
            return Err(EvalError::new(format!(
                "internal error: condition produced {} values for {rows} rows",
                result.len()
            )));
        }
        Ok(result)
    }
}

/// Repeats a one-element result (from constant operands) to `rows` entries.
fn broadcast(array: &ArrayRef, rows: usize) -> Result<ArrayRef, EvalError> {
    if array.len() == rows {
        return Ok(Arc::clone(array));
    }
    if array.len() != 1 {
        return Err(EvalError::new(format!(
            "internal error: {} values for {rows} rows",
            array.len()
        )));
    }
    let indices = arrow::array::UInt32Array::from(vec![0u32; rows]);
    arrow::compute::take(array.as_ref(), &indices, None)
        .map_err(|error| EvalError::arrow("broadcast failed", error))
}

fn broadcast_bool(result: BooleanArray, rows: usize) -> Result<BooleanArray, EvalError> {
    if result.len() == rows {
        return Ok(result);
    }
    let array: ArrayRef = Arc::new(result);
    let broadcast = broadcast(&array, rows)?;
    broadcast
        .as_any()
        .downcast_ref::<BooleanArray>()
        .cloned()
        .ok_or_else(|| EvalError::new("internal error: broadcast changed the type"))
}

/// A compiled operand before it meets the other side of an operator.
enum Operand {
    Typed {
        value: Value,
        data_type: DataType,
        /// How to name the operand in errors, e.g. "column `amount`".
        label: String,
    },
    /// A literal whose type depends on what it is compared with.
    Literal(Literal),
}

impl Operand {
    fn label(&self) -> String {
        match self {
            Operand::Typed {
                label, data_type, ..
            } => format!("{label} ({data_type})"),
            Operand::Literal(literal) => literal_label(literal),
        }
    }
}

fn literal_label(literal: &Literal) -> String {
    match literal {
        Literal::Null => "null".to_string(),
        Literal::Bool(value) => value.to_string(),
        Literal::Int(_) | Literal::Decimal(_) => format!("the number {literal}"),
        Literal::String(_) => format!("the text {literal}"),
    }
}

fn expr_label(expr: &Expr) -> String {
    match expr {
        Expr::Column(name) => format!("column `{name}`"),
        other => format!("`{other}`"),
    }
}

struct Compiler<'a> {
    schema: &'a SchemaRef,
    inputs: Vec<(usize, String, DataType)>,
}

impl Compiler<'_> {
    fn column(&mut self, name: &str) -> Result<(usize, DataType), EvalError> {
        let fields = self.schema.fields();
        if let Some(index) = fields.iter().position(|field| field.name() == name) {
            let data_type = fields[index].data_type().clone();
            if !self.inputs.iter().any(|(known, _, _)| *known == index) {
                self.inputs
                    .push((index, name.to_string(), data_type.clone()));
            }
            return Ok((index, data_type));
        }
        let names: Vec<&str> = fields.iter().map(|field| field.name().as_str()).collect();
        let available = if names.is_empty() {
            "the input has no columns".to_string()
        } else {
            format!("available columns: {}", names.join(", "))
        };
        let help = match closest_name(name, names.iter().copied()) {
            Some(suggestion) => format!("did you mean `{suggestion}`? {available}"),
            None => available,
        };
        Err(
            EvalError::new(format!("unknown column `{name}` in the filter condition"))
                .with_help(help),
        )
    }

    /// Compiles an expression that must produce true/false/null per row.
    fn condition(&mut self, expr: &Expr) -> Result<Condition, EvalError> {
        let condition = match expr {
            Expr::Literal(Literal::Bool(value)) => Condition::Const(Some(*value)),
            Expr::Literal(Literal::Null) => Condition::Const(None),
            Expr::Literal(literal) => {
                return Err(EvalError::new(format!(
                    "{} is not a condition (true or false)",
                    literal_label(literal)
                ))
                .with_help("compare it with something, e.g. amount > 10"));
            }
            Expr::Column(_) | Expr::Arith { .. } | Expr::Negate(_) => {
                let Operand::Typed {
                    value, data_type, ..
                } = self.value(expr)?
                else {
                    return Err(EvalError::new(
                        "internal error: column compiled to a literal",
                    ));
                };
                if data_type != DataType::Boolean {
                    return Err(EvalError::new(format!(
                        "{} ({data_type}) is not a condition (true or false)",
                        expr_label(expr)
                    ))
                    .with_help(format!("compare it with something, e.g. {expr} > 0")));
                }
                Condition::Value(value)
            }
            Expr::Compare { op, left, right } => {
                let left_operand = self.value(left)?;
                let right_operand = self.value(right)?;
                let (left, _, right, _) = unify(left_operand, right_operand, Purpose::Compare)?;
                Condition::Compare {
                    op: *op,
                    left,
                    right,
                }
            }
            Expr::And(items) => Condition::And(
                items
                    .iter()
                    .map(|item| self.condition(item))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Or(items) => Condition::Or(
                items
                    .iter()
                    .map(|item| self.condition(item))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Not(inner) => Condition::Not(Box::new(self.condition(inner)?)),
            Expr::IsNull { expr, negated } => match self.value(expr)? {
                Operand::Literal(literal) => {
                    Condition::Const(Some((literal == Literal::Null) != *negated))
                }
                Operand::Typed { value, .. } => Condition::IsNull {
                    value,
                    negated: *negated,
                },
            },
            Expr::InList {
                expr: tested,
                list,
                negated,
            } => {
                let mut alternatives = Vec::with_capacity(list.len());
                for item in list {
                    let tested_operand = self.value(tested)?;
                    let item_operand = self.value(item)?;
                    let (left, _, right, _) = unify(tested_operand, item_operand, Purpose::InList)?;
                    alternatives.push(Condition::Compare {
                        op: CompareOp::Eq,
                        left,
                        right,
                    });
                }
                let any = Condition::Or(alternatives);
                negated_if(*negated, any)
            }
            Expr::Between {
                expr: tested,
                low,
                high,
                negated,
            } => {
                let (value, low) = (self.value(tested)?, self.value(low)?);
                let (value_low, _, low, _) = unify(value, low, Purpose::Compare)?;
                let (value, high) = (self.value(tested)?, self.value(high)?);
                let (value_high, _, high, _) = unify(value, high, Purpose::Compare)?;
                let within = Condition::And(vec![
                    Condition::Compare {
                        op: CompareOp::GtEq,
                        left: value_low,
                        right: low,
                    },
                    Condition::Compare {
                        op: CompareOp::LtEq,
                        left: value_high,
                        right: high,
                    },
                ]);
                negated_if(*negated, within)
            }
            Expr::Like {
                expr: tested,
                pattern,
                negated,
            } => {
                let (value, data_type) = match self.value(tested)? {
                    Operand::Literal(Literal::String(text)) => (
                        Value::Constant(Arc::new(StringArray::from(vec![text]))),
                        DataType::Utf8,
                    ),
                    Operand::Literal(literal) => {
                        return Err(EvalError::new(format!(
                            "like needs text, not {}",
                            literal_label(&literal)
                        )));
                    }
                    Operand::Typed {
                        value, data_type, ..
                    } => (value, data_type),
                };
                if !is_string(&data_type) {
                    return Err(EvalError::new(format!(
                        "like needs text, but {} is {data_type}",
                        expr_label(tested)
                    ))
                    .with_help("cast the column to string first"));
                }
                let pattern: ArrayRef = Arc::new(StringArray::from(vec![pattern.clone()]));
                let pattern = cast_with_options(&pattern, &data_type, &strict_cast_options())
                    .map_err(|error| EvalError::arrow("cannot prepare the like pattern", error))?;
                Condition::Like {
                    value,
                    pattern,
                    negated: *negated,
                }
            }
        };
        fold_condition(condition)
    }

    /// Compiles an expression that produces a value per row (or a literal awaiting a type).
    fn value(&mut self, expr: &Expr) -> Result<Operand, EvalError> {
        match expr {
            Expr::Column(name) => {
                let (index, data_type) = self.column(name)?;
                let label = expr_label(expr);
                // Dictionary columns compare and compute through their values.
                if let DataType::Dictionary(_, value_type) = &data_type {
                    let value_type = value_type.as_ref().clone();
                    return Ok(Operand::Typed {
                        value: Value::Cast {
                            inner: Box::new(Value::Column(index)),
                            to: value_type.clone(),
                        },
                        data_type: value_type,
                        label,
                    });
                }
                Ok(Operand::Typed {
                    value: Value::Column(index),
                    data_type,
                    label,
                })
            }
            Expr::Literal(literal) => Ok(Operand::Literal(literal.clone())),
            Expr::Arith { op, left, right } => {
                let left = self.value(left)?;
                let right = self.value(right)?;
                let (left, left_type, right, right_type) = unify(left, right, Purpose::Arith(*op))?;
                let data_type = result_type(*op, &left_type, &right_type)?;
                let value = Value::Arith {
                    op: *op,
                    left: Box::new(left),
                    right: Box::new(right),
                };
                Ok(Operand::Typed {
                    value: fold_value(value)?,
                    data_type,
                    label: expr_label(expr),
                })
            }
            Expr::Negate(inner) => {
                let (inner_value, inner_type) = match self.value(inner)? {
                    Operand::Literal(literal) => natural(&literal)?,
                    Operand::Typed {
                        value, data_type, ..
                    } => (value, data_type),
                };
                if !inner_type.is_numeric() {
                    return Err(EvalError::new(format!(
                        "'-' needs a number, but {} is {inner_type}",
                        expr_label(inner)
                    )));
                }
                numeric::neg(new_empty_array(&inner_type).as_ref()).map_err(|error| {
                    EvalError::arrow(&format!("cannot negate {}", expr_label(inner)), error)
                })?;
                Ok(Operand::Typed {
                    value: fold_value(Value::Negate(Box::new(inner_value)))?,
                    data_type: inner_type,
                    label: expr_label(expr),
                })
            }
            Expr::Compare { .. }
            | Expr::And(_)
            | Expr::Or(_)
            | Expr::Not(_)
            | Expr::IsNull { .. }
            | Expr::InList { .. }
            | Expr::Between { .. }
            | Expr::Like { .. } => {
                let condition = self.condition(expr)?;
                let value = match condition {
                    Condition::Const(constant) => {
                        Value::Constant(Arc::new(BooleanArray::from(vec![constant])))
                    }
                    other => Value::Condition(Box::new(other)),
                };
                Ok(Operand::Typed {
                    value,
                    data_type: DataType::Boolean,
                    label: expr_label(expr),
                })
            }
        }
    }
}

/// Both operands after [`unify`], each with its type: (left, left type, right, right type).
type Unified = (Value, DataType, Value, DataType);

/// What two operands are being unified for; shapes the error messages.
#[derive(Clone, Copy)]
enum Purpose {
    Compare,
    InList,
    Arith(ArithOp),
}

/// Brings two operands to types an Arrow kernel accepts together: literals take the other
/// side's type when that loses nothing, otherwise both sides are cast to a common type.
fn unify(left: Operand, right: Operand, purpose: Purpose) -> Result<Unified, EvalError> {
    if let Operand::Literal(Literal::Null) = &left {
        return Err(null_operand_error(&right, purpose));
    }
    if let Operand::Literal(Literal::Null) = &right {
        return Err(null_operand_error(&left, purpose));
    }
    if let Purpose::Arith(op) = purpose {
        for operand in [&left, &right] {
            let numeric = match operand {
                Operand::Literal(literal) => {
                    matches!(literal, Literal::Int(_) | Literal::Decimal(_))
                }
                Operand::Typed { data_type, .. } => data_type.is_numeric(),
            };
            if !numeric {
                return Err(EvalError::new(format!(
                    "'{}' needs numbers, but {} is not a number",
                    op.symbol(),
                    operand.label()
                )));
            }
        }
    }
    let left_label = left.label();
    let right_label = right.label();
    match (left, right) {
        (Operand::Literal(left), Operand::Literal(right)) => {
            let (left_value, left_type) = natural(&left)?;
            let right_operand = Operand::Literal(right);
            let left_operand = Operand::Typed {
                value: left_value,
                data_type: left_type,
                label: literal_label(&left),
            };
            unify(left_operand, right_operand, purpose)
        }
        (
            Operand::Typed {
                value, data_type, ..
            },
            Operand::Literal(literal),
        ) => {
            let (value, constant, common) =
                literal_against(value, &data_type, &literal, &left_label)?;
            Ok((value, common.clone(), constant, common))
        }
        (
            Operand::Literal(literal),
            Operand::Typed {
                value, data_type, ..
            },
        ) => {
            let (value, constant, common) =
                literal_against(value, &data_type, &literal, &right_label)?;
            Ok((constant, common.clone(), value, common))
        }
        (
            Operand::Typed {
                value: left,
                data_type: left_type,
                ..
            },
            Operand::Typed {
                value: right,
                data_type: right_type,
                ..
            },
        ) => {
            // Decimal arithmetic handles differing precision and scale itself.
            if matches!(purpose, Purpose::Arith(_))
                && matches!(
                    (&left_type, &right_type),
                    (DataType::Decimal128(..), DataType::Decimal128(..))
                )
            {
                return Ok((left, left_type, right, right_type));
            }
            let Some(common) = common_type(&left_type, &right_type) else {
                let verb = match purpose {
                    Purpose::Arith(op) => format!("apply '{}' to", op.symbol()),
                    Purpose::Compare | Purpose::InList => "compare".to_string(),
                };
                return Err(EvalError::new(format!(
                    "cannot {verb} {left_label} and {right_label}"
                ))
                .with_help("convert one side first with a cast transform"));
            };
            Ok((
                cast_value(left, &left_type, &common)?,
                common.clone(),
                cast_value(right, &right_type, &common)?,
                common,
            ))
        }
    }
}

fn null_operand_error(other: &Operand, purpose: Purpose) -> EvalError {
    let other_text = match other {
        Operand::Typed { label, .. } => label.clone(),
        Operand::Literal(literal) => literal.to_string(),
    };
    match purpose {
        Purpose::Compare => EvalError::new(format!(
            "comparing {other_text} with null is never true (the result is unknown)"
        ))
        .with_help("test for missing values with `is null` / `is not null`"),
        Purpose::InList => EvalError::new("null in an in (...) list never matches")
            .with_help("remove it and add `or <column> is null` to keep rows with no value"),
        Purpose::Arith(op) => {
            EvalError::new(format!("'{}' with null always gives null", op.symbol()))
        }
    }
}

/// Wraps `value` in a cast unless it already has type `to`; constants are cast right away.
fn cast_value(value: Value, from: &DataType, to: &DataType) -> Result<Value, EvalError> {
    if from == to {
        return Ok(value);
    }
    fold_value(Value::Cast {
        inner: Box::new(value),
        to: to.clone(),
    })
}

/// A literal's own type: integers are Int64, decimals exact Decimal128 (Float64 beyond 38
/// digits), strings Utf8, booleans Boolean.
fn natural(literal: &Literal) -> Result<(Value, DataType), EvalError> {
    let (array, data_type): (ArrayRef, DataType) = match literal {
        Literal::Null => {
            return Err(EvalError::new("null has no type here")
                .with_help("test for missing values with `is null`"));
        }
        Literal::Bool(value) => (
            Arc::new(BooleanArray::from(vec![*value])),
            DataType::Boolean,
        ),
        Literal::Int(value) => (Arc::new(Int64Array::from(vec![*value])), DataType::Int64),
        Literal::String(text) => (
            Arc::new(StringArray::from(vec![text.clone()])),
            DataType::Utf8,
        ),
        Literal::Decimal(text) => {
            let digits = text.trim_start_matches('-');
            let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
            let scale = fraction.len();
            let precision = whole.len().max(1) + scale;
            if precision <= 38 {
                // Bounded by 38 just above.
                let data_type = DataType::Decimal128(precision as u8, scale as i8);
                let text_array: ArrayRef = Arc::new(StringArray::from(vec![text.clone()]));
                let array = cast_with_options(&text_array, &data_type, &strict_cast_options())
                    .map_err(|error| {
                        EvalError::arrow(&format!("cannot read the number {text}"), error)
                    })?;
                (array, data_type)
            } else {
                let value: f64 = text
                    .parse()
                    .map_err(|_| EvalError::new(format!("cannot read the number {text}")))?;
                (Arc::new(Float64Array::from(vec![value])), DataType::Float64)
            }
        }
    };
    Ok((Value::Constant(array), data_type))
}

/// Converts `literal` for use against a value of type `target`.
///
/// Returns the (possibly cast) value, the converted literal, and the type both now have.
fn literal_against(
    value: Value,
    target: &DataType,
    literal: &Literal,
    value_label: &str,
) -> Result<(Value, Value, DataType), EvalError> {
    let mismatch = || {
        EvalError::new(format!(
            "cannot compare {value_label} with {}",
            literal_label(literal)
        ))
    };
    match literal {
        Literal::Null => Err(mismatch()),
        Literal::Bool(_) => {
            if *target != DataType::Boolean {
                return Err(mismatch());
            }
            let (constant, _) = natural(literal)?;
            Ok((value, constant, DataType::Boolean))
        }
        Literal::String(text) => {
            let source: ArrayRef = Arc::new(StringArray::from(vec![text.clone()]));
            match cast_with_options(&source, target, &strict_cast_options()) {
                Ok(converted) if converted.null_count() == 0 => {
                    Ok((value, Value::Constant(converted), target.clone()))
                }
                result => {
                    let reason = match result {
                        Err(error) => format!(": {}", arrow_message(&error)),
                        Ok(_) => String::new(),
                    };
                    Err(EvalError::new(format!(
                        "cannot compare {value_label} with {}: the text does not convert to \
                         {target}{reason}",
                        literal_label(literal)
                    ))
                    .with_help(literal_format_hint(target)))
                }
            }
        }
        Literal::Int(_) | Literal::Decimal(_) => {
            if !target.is_numeric() {
                let error = mismatch();
                return Err(if is_string(target) {
                    error.with_help(format!("quote the number to compare as text: '{literal}'"))
                } else {
                    error.with_help(literal_format_hint(target))
                });
            }
            let (constant, natural_type) = natural(literal)?;
            let Value::Constant(natural_array) = &constant else {
                return Err(EvalError::new("internal error: literal is not a constant"));
            };
            if natural_type == *target {
                return Ok((value, constant, natural_type));
            }
            // Prefer converting the literal (cheap, once) over the column (every batch), but
            // only when the conversion is exact: 12.345 must not become 12.35 for decimal(8,2).
            if let Ok(converted) = cast_with_options(natural_array, target, &strict_cast_options())
                && let Ok(back) =
                    cast_with_options(&converted, &natural_type, &strict_cast_options())
                && converted.null_count() == 0
                && back.as_ref() == natural_array.as_ref()
            {
                return Ok((value, Value::Constant(converted), target.clone()));
            }
            let common = common_type(target, &natural_type).ok_or_else(mismatch)?;
            Ok((
                cast_value(value, target, &common)?,
                cast_value(constant, &natural_type, &common)?,
                common,
            ))
        }
    }
}

fn literal_format_hint(target: &DataType) -> String {
    match target {
        DataType::Date32 | DataType::Date64 => "write dates as '2026-01-31'".to_string(),
        DataType::Timestamp(..) => {
            "write timestamps as '2026-01-31T12:00:00Z' or '2026-01-31 12:00:00'".to_string()
        }
        DataType::Time32(_) | DataType::Time64(_) => "write times as '12:30:00'".to_string(),
        DataType::Boolean => "write true or false".to_string(),
        other if other.is_numeric() => "write numbers without quotes, e.g. 10 or 12.5".to_string(),
        _ => "write text in single quotes, e.g. 'CA'".to_string(),
    }
}

fn is_string(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Decimal digits needed for any value of an integer type.
fn integer_digits(data_type: &DataType) -> u8 {
    match data_type {
        DataType::Int8 | DataType::UInt8 => 3,
        DataType::Int16 | DataType::UInt16 => 5,
        DataType::Int32 | DataType::UInt32 => 10,
        DataType::Int64 => 19,
        _ => 20,
    }
}

/// Precision and scale of the narrower decimal kinds, treated as Decimal128 for unification.
fn decimal_parts(data_type: &DataType) -> Option<(u8, i8)> {
    match data_type {
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) | DataType::Decimal128(p, s) => {
            Some((*p, *s))
        }
        _ => None,
    }
}

/// The type two differently typed values are both cast to for comparison or arithmetic.
fn common_type(left: &DataType, right: &DataType) -> Option<DataType> {
    use DataType::*;
    if left == right {
        return Some(left.clone());
    }
    if left.is_numeric() && right.is_numeric() {
        return Some(common_numeric(left, right));
    }
    if is_string(left) && is_string(right) {
        return Some(if matches!(left, LargeUtf8) || matches!(right, LargeUtf8) {
            LargeUtf8
        } else {
            Utf8
        });
    }
    let is_binary = |t: &DataType| matches!(t, Binary | LargeBinary | BinaryView);
    if is_binary(left) && is_binary(right) {
        return Some(
            if matches!(left, LargeBinary) || matches!(right, LargeBinary) {
                LargeBinary
            } else {
                Binary
            },
        );
    }
    match (left, right) {
        (Date32, Date64) | (Date64, Date32) => Some(Date64),
        (Date32 | Date64, Timestamp(unit, zone)) | (Timestamp(unit, zone), Date32 | Date64) => {
            Some(Timestamp(*unit, zone.clone()))
        }
        (Timestamp(left_unit, left_zone), Timestamp(right_unit, right_zone)) => Some(Timestamp(
            finer(*left_unit, *right_unit),
            left_zone.clone().or_else(|| right_zone.clone()),
        )),
        (Time32(_) | Time64(_), Time32(_) | Time64(_)) => Some(Time64(ArrowTimeUnit::Nanosecond)),
        _ => None,
    }
}

fn finer(left: ArrowTimeUnit, right: ArrowTimeUnit) -> ArrowTimeUnit {
    let rank = |unit: ArrowTimeUnit| match unit {
        ArrowTimeUnit::Second => 0,
        ArrowTimeUnit::Millisecond => 1,
        ArrowTimeUnit::Microsecond => 2,
        ArrowTimeUnit::Nanosecond => 3,
    };
    if rank(left) >= rank(right) {
        left
    } else {
        right
    }
}

fn common_numeric(left: &DataType, right: &DataType) -> DataType {
    use DataType::*;
    let max_precision = 38u8;
    match (decimal_parts(left), decimal_parts(right)) {
        (Some((p1, s1)), Some((p2, s2))) => {
            let scale = s1.max(s2).max(0);
            let whole = (p1 as i16 - s1 as i16).max(p2 as i16 - s2 as i16).max(1);
            // Bounded to 1..=38 by the clamp.
            let precision = (whole + scale as i16).clamp(1, max_precision as i16) as u8;
            Decimal128(precision, scale.min(precision as i8))
        }
        (Some((p, s)), None) | (None, Some((p, s))) if left.is_integer() || right.is_integer() => {
            let integer = if left.is_integer() { left } else { right };
            let scale = s.max(0);
            let whole = (p as i16 - s as i16).max(integer_digits(integer) as i16);
            let precision = (whole + scale as i16).clamp(1, max_precision as i16) as u8;
            Decimal128(precision, scale.min(precision as i8))
        }
        _ if left.is_integer() && right.is_integer() => {
            let unsigned = |t: &DataType| matches!(t, UInt8 | UInt16 | UInt32 | UInt64);
            match (unsigned(left), unsigned(right)) {
                (true, true) => UInt64,
                _ if matches!(left, UInt64) || matches!(right, UInt64) => Decimal128(20, 0),
                _ => Int64,
            }
        }
        _ => Float64,
    }
}

/// The type an arithmetic operation produces, found by running the kernel on empty inputs.
fn result_type(op: ArithOp, left: &DataType, right: &DataType) -> Result<DataType, EvalError> {
    let result =
        arith_kernel(op)(&new_empty_array(left), &new_empty_array(right)).map_err(|error| {
            EvalError::arrow(
                &format!("cannot apply '{}' to {left} and {right}", op.symbol()),
                error,
            )
        })?;
    Ok(result.data_type().clone())
}

/// One row and no columns: the context in which constant parts are evaluated once.
fn constant_batch() -> Result<RecordBatch, EvalError> {
    RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .map_err(|error| EvalError::arrow("internal error", error))
}

fn fold_value(value: Value) -> Result<Value, EvalError> {
    if !value.is_constant() || matches!(value, Value::Constant(_)) {
        return Ok(value);
    }
    let evaluated = value.evaluate(&constant_batch()?)?;
    Ok(Value::Constant(Arc::clone(evaluated.array())))
}

fn fold_condition(condition: Condition) -> Result<Condition, EvalError> {
    if !condition.is_constant() || matches!(condition, Condition::Const(_)) {
        return Ok(condition);
    }
    let result = condition.evaluate(&constant_batch()?)?;
    Ok(Condition::Const(if result.is_null(0) {
        None
    } else {
        Some(result.value(0))
    }))
}

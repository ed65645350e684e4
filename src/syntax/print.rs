//! Prints the AST as canonical source with every operator application
//! parenthesized, so `dlc ir --stage ast` shows exactly how a program parsed.

use std::fmt::Write;

use super::ast::*;

pub fn program(p: &Program) -> String {
    let mut out = String::new();
    for item in &p.items {
        print_item(&mut out, item);
    }
    out
}

fn print_item(out: &mut String, item: &Item) {
    match item {
        Item::Data(d) => {
            let _ = writeln!(out, "data {} = {}", d.name.node, expr(&d.source));
        }
        Item::Model(m) => {
            let inputs: Vec<String> = m
                .inputs
                .iter()
                .map(|(n, t)| format!("{}: {}", n.node, ty(t)))
                .collect();
            let _ = write!(out, "model {}({})", m.name.node, inputs.join(", "));
            if let Some(t) = &m.output {
                let _ = write!(out, " -> {}", ty(t));
            }
            out.push_str(" {\n");
            print_body(out, &m.body);
            out.push_str("}\n");
        }
        Item::Fn(f) => {
            let params: Vec<&str> = f.params.iter().map(|p| p.node.as_str()).collect();
            let _ = writeln!(out, "fn {}({}) {{", f.name.node, params.join(", "));
            print_body(out, &f.body);
            out.push_str("}\n");
        }
        Item::Train(t) => {
            out.push_str("train ");
            if let Some(r) = &t.run {
                let _ = write!(out, "{}: ", r.node);
            }
            let _ = writeln!(out, "{} on {} {{", t.model.node, t.data.node);
            for s in &t.settings {
                let _ = writeln!(out, "    {} = {}", s.key.node, expr(&s.value));
            }
            out.push_str("}\n");
        }
        Item::Let(l) => {
            let _ = writeln!(out, "{}", let_(l));
        }
        Item::Assign(a) => {
            let op = a.op.symbol();
            let idx = a
                .index
                .as_ref()
                .map(|i| format!("[{}]", indices(i)))
                .unwrap_or_default();
            let _ = writeln!(out, "{}{} {} {}", a.target.node, idx, op, expr(&a.value));
        }
        Item::Expr(e) => {
            let _ = writeln!(out, "{}", expr(e));
        }
        Item::Error(_) => out.push_str("<error>\n"),
    }
}

fn print_body(out: &mut String, body: &[Stmt]) {
    for s in body {
        match s {
            Stmt::Param(p) => {
                let _ = write!(out, "    param {}: {}", p.name.node, ty(&p.ty));
                if let Some(i) = &p.init {
                    let _ = write!(out, " = {}", expr(i));
                }
                out.push('\n');
            }
            Stmt::Let(l) => {
                let _ = writeln!(out, "    {}", let_(l));
            }
            Stmt::Expr(e) => {
                let _ = writeln!(out, "    {}", expr(e));
            }
            Stmt::Error(_) => out.push_str("    <error>\n"),
        }
    }
}

fn let_(l: &Let) -> String {
    match &l.ty {
        Some(t) => format!("let {}: {} = {}", l.name.node, ty(t), expr(&l.value)),
        None => format!("let {} = {}", l.name.node, expr(&l.value)),
    }
}

pub fn ty(t: &TypeAnn) -> String {
    if t.dims.is_empty() {
        return t.dtype.node.clone();
    }
    let dims: Vec<String> = t
        .dims
        .iter()
        .map(|d| match &d.node {
            DimAnn::Fixed(n) => n.to_string(),
            DimAnn::Name(s) => s.clone(),
        })
        .collect();
    format!("{}[{}]", t.dtype.node, dims.join(", "))
}

fn indices(idx: &[IndexArg]) -> String {
    let parts: Vec<String> = idx
        .iter()
        .map(|i| match i {
            IndexArg::Single(e) => expr(e),
            IndexArg::Slice {
                start, end, step, ..
            } => {
                let o = |e: &Option<Expr>| e.as_ref().map(expr).unwrap_or_default();
                match step {
                    Some(s) => format!("{}:{}:{}", o(start), o(end), expr(s)),
                    None => format!("{}:{}", o(start), o(end)),
                }
            }
        })
        .collect();
    parts.join(", ")
}

pub fn expr(e: &Expr) -> String {
    match &e.node {
        ExprKind::Int(v) => v.to_string(),
        ExprKind::Float(v) => format!("{v:?}"),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Str(s) => format!("\"{s}\""),
        ExprKind::Name(n) => n.clone(),
        ExprKind::List(items) => {
            let parts: Vec<String> = items.iter().map(expr).collect();
            format!("[{}]", parts.join(", "))
        }
        ExprKind::Call { callee, args } => {
            let parts: Vec<String> = args
                .iter()
                .map(|a| match &a.name {
                    Some(n) => format!("{} = {}", n.node, expr(&a.value)),
                    None => expr(&a.value),
                })
                .collect();
            format!("{}({})", expr(callee), parts.join(", "))
        }
        ExprKind::Binary { op, lhs, rhs } => {
            format!("({} {} {})", expr(lhs), op.symbol(), expr(rhs))
        }
        ExprKind::Unary { op, operand } => match op {
            UnOp::Neg => format!("(-{})", expr(operand)),
            UnOp::Plus => format!("(+{})", expr(operand)),
            UnOp::Not => format!("(not {})", expr(operand)),
        },
        ExprKind::Index { base, indices: idx } => format!("{}[{}]", expr(base), indices(idx)),
        ExprKind::Field { base, name } => format!("{}.{}", expr(base), name.node),
        ExprKind::Error => "<error>".to_string(),
    }
}

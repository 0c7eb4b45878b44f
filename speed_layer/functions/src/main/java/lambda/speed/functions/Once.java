package lambda.speed.functions;

import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * The identity, declared non-deterministic: a value the generated SQL reads several times is
 * computed once.
 *
 * <p>Flink's planner inlines a projected expression into every expression that reads it (it has
 * no common subexpression elimination), except a non-deterministic one. Wrapping a derived value
 * (the amount's text, which each amount check reads) in this function keeps it in its own
 * projection, evaluated once per row. It holds no rule of the contract.
 */
public final class Once extends ScalarFunction {

    /** Text stays in Flink's internal form: a Java String here would cost two conversions. */
    public @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData value) {
        return value;
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }
}

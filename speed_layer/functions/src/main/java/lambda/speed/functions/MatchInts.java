package lambda.speed.functions;

import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * One regex match of a text and the integers its capture groups hold, in one call.
 *
 * <p>The speed job checks a text against a pattern and then reads numbers out of it (an event
 * time's year, month, ... fraction, offset); cutting each one out in SQL cost a substring, a cast
 * and a boxed value per number per row (docs/benchmarks.md). It knows regexes and digits, not the
 * contract: the pattern and the widths are arguments generated from {@code lambda_contract}.
 *
 * <p>{@code eval(text, regex, width...)}: NULL when the text is NULL or {@code regex} finds no
 * match (the job passes whole-value patterns, {@code ^(?:...)\z}); else one BIGINT per capture
 * group: the ASCII digits of the group read as a decimal number, negative when the group starts
 * with {@code '-'}, NULL when the group did not take part or has no digit (or more than 18). With
 * a width {@code w > 0} for the group, its digits are read as a fixed-width field: the first
 * {@code w} digits, padded on the right with zeros ({@code ".5"} at width 3 is 500).
 *
 * <p>Declared non-deterministic, like {@link JsonMembers}, so the planner never inlines the call
 * into each expression that reads an element of its answer.
 */
public final class MatchInts extends ScalarFunction {

    private static final int MAX_DIGITS = 18;

    private transient String regexSeen;
    private transient Pattern pattern;

    @DataTypeHint(value = "ARRAY<BIGINT>", bridgedTo = ArrayData.class)
    public ArrayData eval(
            @DataTypeHint(value = "STRING", bridgedTo = StringData.class) StringData text,
            String regex,
            Integer... widths) {
        if (text == null || regex == null) {
            return null;
        }
        if (!regex.equals(regexSeen)) {
            pattern = Pattern.compile(regex);
            regexSeen = regex;
        }
        String s = text.toString();
        Matcher m = pattern.matcher(s);
        if (!m.find()) {
            return null;
        }
        int groups = m.groupCount();
        Long[] out = new Long[groups];
        for (int g = 1; g <= groups; g++) {
            int start = m.start(g);
            if (start < 0) {
                continue;
            }
            int width = g - 1 < widths.length && widths[g - 1] != null ? widths[g - 1] : 0;
            out[g - 1] = digits(s, start, m.end(g), width);
        }
        return new GenericArrayData(out);
    }

    /** The digits of {@code s[start, end)} as a number (see the class comment), or null. */
    private static Long digits(String s, int start, int end, int width) {
        long value = 0;
        int count = 0;
        for (int i = start; i < end && (width == 0 || count < width); i++) {
            char c = s.charAt(i);
            if (c >= '0' && c <= '9') {
                value = value * 10 + (c - '0');
                if (++count > MAX_DIGITS) {
                    return null;
                }
            }
        }
        if (count == 0) {
            return null;
        }
        for (; count < width; count++) {
            value *= 10;
        }
        return s.charAt(start) == '-' ? -value : value;
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }
}

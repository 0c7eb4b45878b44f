package lambda.speed.functions;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.data.ArrayData;
import org.apache.flink.table.data.GenericArrayData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * One streaming parse of a JSON payload: the kind of the document and, for each requested
 * top-level member, its JSON type and its scalar text.
 *
 * <p>The speed job validates events in SQL generated from {@code lambda_contract}; Flink's JSON
 * functions parse the whole document on every call, so this function replaces them with one
 * pass. It knows JSON, not the contract: the member names and the nesting limit are arguments,
 * and the reasons are derived from its answer in SQL. It reads JSON as Python's {@code json}
 * module does (the contract's reference validator): strict UTF-8, no byte-order mark, blanks
 * {@code ' ', \t, \n, \r} only, no trailing data, no NaN or Infinity, the last duplicate key
 * wins, and any nesting deeper than {@code maxDepth} is not JSON.
 *
 * <p>Result: {@code [document kind, kind of member 1, text of member 1, kind of member 2, ...]}.
 * The document kind is {@code empty}, {@code not_utf8}, {@code not_json} or the JSON type of the
 * document; a member's kind is its JSON type ({@code object, array, string, number, boolean,
 * null}) or NULL when absent; its text is a string's content, a number's literal as written, or
 * {@code true}/{@code false}, and NULL for objects, arrays and null.
 *
 * <p>It works on Flink's internal data, because converting to and from Java strings cost more
 * than the parse (docs/benchmarks.md): it reads the payload's bytes (JSON's structure is ASCII,
 * so every byte of a multi-byte UTF-8 sequence is inside a string), checks UTF-8 on the bytes,
 * and answers slices of the payload as {@code StringData}; only a string with escapes is decoded.
 *
 * <p>Declared non-deterministic on purpose: Flink's planner then never inlines a call into the
 * several expressions that read its result, so the payload is parsed exactly once.
 */
public final class JsonMembers extends ScalarFunction {

    public static final String EMPTY = "empty";
    public static final String NOT_UTF8 = "not_utf8";
    public static final String NOT_JSON = "not_json";
    public static final String OBJECT = "object";
    public static final String ARRAY = "array";
    public static final String STRING = "string";
    public static final String NUMBER = "number";
    public static final String BOOLEAN = "boolean";
    public static final String NULL = "null";

    // Made per instance, in open(): one per subtask, so no text object is shared across threads.
    private transient StringData empty;
    private transient StringData notUtf8;
    private transient StringData notJson;
    private transient StringData object;
    private transient StringData array;
    private transient StringData string;
    private transient StringData number;
    private transient StringData bool;
    private transient StringData nul;
    private transient StringData trueText;
    private transient StringData falseText;

    private transient String[] namesSeen;
    private transient byte[][] nameBytes;

    @Override
    public void open(FunctionContext context) {
        empty = StringData.fromString(EMPTY);
        notUtf8 = StringData.fromString(NOT_UTF8);
        notJson = StringData.fromString(NOT_JSON);
        object = StringData.fromString(OBJECT);
        array = StringData.fromString(ARRAY);
        string = StringData.fromString(STRING);
        number = StringData.fromString(NUMBER);
        bool = StringData.fromString(BOOLEAN);
        nul = StringData.fromString(NULL);
        trueText = StringData.fromString("true");
        falseText = StringData.fromString("false");
    }

    @DataTypeHint(value = "ARRAY<STRING>", bridgedTo = ArrayData.class)
    public ArrayData eval(byte[] payload, Integer maxDepth, String... names) {
        Object[] out = new Object[1 + 2 * names.length];
        if (payload == null || payload.length == 0) {
            out[0] = empty;
            return new GenericArrayData(out);
        }
        if (!Utf8.valid(payload)) {
            out[0] = notUtf8;
            return new GenericArrayData(out);
        }
        try {
            int depth = maxDepth == null ? Integer.MAX_VALUE : maxDepth;
            out[0] = new Parser(payload, depth, encoded(names), out).document();
        } catch (NotJson e) {
            Arrays.fill(out, null);
            out[0] = notJson;
        }
        return new GenericArrayData(out);
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }

    /** The names as UTF-8, encoded once: the SQL passes the same constants on every call. */
    private byte[][] encoded(String[] names) {
        if (!Arrays.equals(names, namesSeen)) {
            byte[][] bytes = new byte[names.length][];
            for (int i = 0; i < names.length; i++) {
                bytes[i] = names[i].getBytes(StandardCharsets.UTF_8);
            }
            nameBytes = bytes;
            namesSeen = names.clone();
        }
        return nameBytes;
    }

    /** Strict UTF-8 as Python's decoder: no overlong forms, no surrogates, nothing above U+10FFFF. */
    static final class Utf8 {
        private Utf8() {}

        static boolean valid(byte[] b) {
            int i = 0;
            int n = b.length;
            while (i < n) {
                int c = b[i];
                if (c >= 0) {
                    i++;
                    continue;
                }
                c &= 0xFF;
                if (c >= 0xC2 && c <= 0xDF) {
                    if (i + 1 >= n || !tail(b[i + 1])) {
                        return false;
                    }
                    i += 2;
                } else if (c >= 0xE0 && c <= 0xEF) {
                    if (i + 2 >= n || !tail(b[i + 1]) || !tail(b[i + 2])) {
                        return false;
                    }
                    int c1 = b[i + 1] & 0xFF;
                    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F)) {
                        return false; // overlong, or a surrogate
                    }
                    i += 3;
                } else if (c >= 0xF0 && c <= 0xF4) {
                    if (i + 3 >= n || !tail(b[i + 1]) || !tail(b[i + 2]) || !tail(b[i + 3])) {
                        return false;
                    }
                    int c1 = b[i + 1] & 0xFF;
                    if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F)) {
                        return false; // overlong, or above U+10FFFF
                    }
                    i += 4;
                } else {
                    return false;
                }
            }
            return true;
        }

        private static boolean tail(byte b) {
            return (b & 0xC0) == 0x80;
        }
    }

    /** Thrown at the first character that is not JSON; carries no stack trace (it is routine). */
    private static final class NotJson extends RuntimeException {
        private static final long serialVersionUID = 1L;
        static final NotJson INSTANCE = new NotJson();

        private NotJson() {
            super("not JSON", null, false, false);
        }
    }

    /** A recursive-descent reader over one document's bytes; fills the members' slots of {@code out}. */
    private final class Parser {
        private final byte[] s;
        private final int len;
        private final int maxDepth;
        private final byte[][] names;
        private final Object[] out;
        private int pos;
        private int depth;

        Parser(byte[] s, int maxDepth, byte[][] names, Object[] out) {
            this.s = s;
            this.len = s.length;
            this.maxDepth = maxDepth;
            this.names = names;
            this.out = out;
        }

        StringData document() {
            blanks();
            StringData kind = value(-1, true);
            blanks();
            if (pos != len) {
                throw NotJson.INSTANCE;
            }
            return kind;
        }

        /** Reads one value; records its kind and text in member slot {@code slot} (if >= 0). */
        private StringData value(int slot, boolean root) {
            if (pos >= len) {
                throw NotJson.INSTANCE;
            }
            byte c = s[pos];
            StringData kind;
            StringData text = null;
            switch (c) {
                case '{':
                    object(root);
                    kind = object;
                    break;
                case '[':
                    array();
                    kind = array;
                    break;
                case '"':
                    text = string(slot >= 0);
                    kind = string;
                    break;
                case 't':
                    literal("true");
                    text = trueText;
                    kind = bool;
                    break;
                case 'f':
                    literal("false");
                    text = falseText;
                    kind = bool;
                    break;
                case 'n':
                    literal("null");
                    kind = nul;
                    break;
                default:
                    text = number();
                    kind = number;
            }
            if (slot >= 0) {
                out[1 + 2 * slot] = kind;
                out[2 + 2 * slot] = text;
            }
            return kind;
        }

        private void object(boolean root) {
            enter();
            pos++;
            blanks();
            if (peek() == '}') {
                pos++;
                depth--;
                return;
            }
            while (true) {
                if (peek() != '"') {
                    throw NotJson.INSTANCE;
                }
                int slot = root ? member() : skipKey();
                blanks();
                if (peek() != ':') {
                    throw NotJson.INSTANCE;
                }
                pos++;
                blanks();
                value(slot, false);
                blanks();
                byte c = peek();
                pos++;
                if (c == ',') {
                    blanks();
                    continue;
                }
                if (c == '}') {
                    depth--;
                    return;
                }
                throw NotJson.INSTANCE;
            }
        }

        private void array() {
            enter();
            pos++;
            blanks();
            if (peek() == ']') {
                pos++;
                depth--;
                return;
            }
            while (true) {
                value(-1, false);
                blanks();
                byte c = peek();
                pos++;
                if (c == ',') {
                    blanks();
                    continue;
                }
                if (c == ']') {
                    depth--;
                    return;
                }
                throw NotJson.INSTANCE;
            }
        }

        private void enter() {
            if (++depth > maxDepth) {
                throw NotJson.INSTANCE;
            }
        }

        /** A top-level key: the index of the requested name it equals, or -1. */
        private int member() {
            int start = pos + 1;
            int end = start;
            while (end < len && s[end] != '"' && s[end] != '\\') {
                end++;
            }
            if (end < len && s[end] == '"') {
                string(false); // validates and moves past the key
                for (int i = 0; i < names.length; i++) {
                    if (Arrays.equals(s, start, end, names[i], 0, names[i].length)) {
                        return i;
                    }
                }
                return -1;
            }
            String key = string(true).toString(); // a key with escapes: compare its decoded text
            for (int i = 0; i < namesSeen.length; i++) {
                if (namesSeen[i].equals(key)) {
                    return i;
                }
            }
            return -1;
        }

        private int skipKey() {
            string(false);
            return -1;
        }

        /**
         * A string from its opening quote; its content when {@code decode}, else null. Without
         * escapes the content is a slice of the payload; with escapes it is decoded.
         */
        private StringData string(boolean decode) {
            int start = ++pos;
            StringBuilder sb = null;
            while (true) {
                if (pos >= len) {
                    throw NotJson.INSTANCE;
                }
                byte c = s[pos];
                if (c == '"') {
                    StringData result = null;
                    if (decode) {
                        result =
                                sb == null
                                        ? BinaryStringData.fromBytes(s, start, pos - start)
                                        : StringData.fromString(
                                                sb.append(new String(s, start, pos - start, StandardCharsets.UTF_8))
                                                        .toString());
                    }
                    pos++;
                    return result;
                }
                if (c >= 0 && c < 0x20) {
                    throw NotJson.INSTANCE;
                }
                if (c != '\\') {
                    pos++;
                    continue;
                }
                if (decode) {
                    if (sb == null) {
                        sb = new StringBuilder(pos - start + 16);
                    }
                    sb.append(new String(s, start, pos - start, StandardCharsets.UTF_8));
                }
                char decoded = escape();
                if (decode) {
                    sb.append(decoded);
                }
                start = pos;
            }
        }

        /** The character a backslash escape at {@code pos} stands for; moves past it. */
        private char escape() {
            if (pos + 1 >= len) {
                throw NotJson.INSTANCE;
            }
            byte e = s[pos + 1];
            pos += 2;
            switch (e) {
                case '"':
                    return '"';
                case '\\':
                    return '\\';
                case '/':
                    return '/';
                case 'b':
                    return '\b';
                case 'f':
                    return '\f';
                case 'n':
                    return '\n';
                case 'r':
                    return '\r';
                case 't':
                    return '\t';
                case 'u':
                    if (pos + 4 > len) {
                        throw NotJson.INSTANCE;
                    }
                    int code = 0;
                    for (int i = 0; i < 4; i++) {
                        byte h = s[pos + i];
                        int digit = h < 0 ? -1 : Character.digit((char) h, 16);
                        if (digit < 0) {
                            throw NotJson.INSTANCE;
                        }
                        code = code * 16 + digit;
                    }
                    pos += 4;
                    return (char) code;
                default:
                    throw NotJson.INSTANCE;
            }
        }

        private void literal(String word) {
            int n = word.length();
            if (pos + n > len) {
                throw NotJson.INSTANCE;
            }
            for (int i = 0; i < n; i++) {
                if (s[pos + i] != word.charAt(i)) {
                    throw NotJson.INSTANCE;
                }
            }
            pos += n;
        }

        /** A number's literal text: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
        private StringData number() {
            int start = pos;
            if (peek() == '-') {
                pos++;
            }
            byte c = peek();
            if (c == '0') {
                pos++;
            } else if (c >= '1' && c <= '9') {
                digits();
            } else {
                throw NotJson.INSTANCE;
            }
            if (pos < len && s[pos] == '.') {
                pos++;
                requireDigits();
            }
            if (pos < len && (s[pos] == 'e' || s[pos] == 'E')) {
                pos++;
                if (pos < len && (s[pos] == '+' || s[pos] == '-')) {
                    pos++;
                }
                requireDigits();
            }
            return BinaryStringData.fromBytes(s, start, pos - start);
        }

        private void requireDigits() {
            byte c = peek();
            if (c < '0' || c > '9') {
                throw NotJson.INSTANCE;
            }
            digits();
        }

        private void digits() {
            while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
                pos++;
            }
        }

        private byte peek() {
            if (pos >= len) {
                throw NotJson.INSTANCE;
            }
            return s[pos];
        }

        private void blanks() {
            while (pos < len) {
                byte c = s[pos];
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }
    }
}

package lambda.speed.functions;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import org.apache.flink.table.annotation.DataTypeHint;
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

    private transient CharsetDecoder decoder;

    @DataTypeHint("ARRAY<STRING>")
    public String[] eval(byte[] payload, Integer maxDepth, String... names) {
        String[] out = new String[1 + 2 * names.length];
        if (payload == null || payload.length == 0) {
            out[0] = EMPTY;
            return out;
        }
        String text = decode(payload);
        if (text == null) {
            out[0] = NOT_UTF8;
            return out;
        }
        try {
            out[0] = new Parser(text, maxDepth == null ? Integer.MAX_VALUE : maxDepth, names, out).document();
        } catch (NotJson e) {
            java.util.Arrays.fill(out, null);
            out[0] = NOT_JSON;
        }
        return out;
    }

    @Override
    public boolean isDeterministic() {
        return false;
    }

    /** The payload as text, or null when it is not valid UTF-8 (as Python's strict decoder). */
    private String decode(byte[] payload) {
        boolean ascii = true;
        for (byte b : payload) {
            if (b < 0) {
                ascii = false;
                break;
            }
        }
        if (ascii) {
            return new String(payload, StandardCharsets.ISO_8859_1);
        }
        if (decoder == null) {
            decoder =
                    StandardCharsets.UTF_8
                            .newDecoder()
                            .onMalformedInput(CodingErrorAction.REPORT)
                            .onUnmappableCharacter(CodingErrorAction.REPORT);
        }
        try {
            return decoder.decode(ByteBuffer.wrap(payload)).toString();
        } catch (CharacterCodingException e) {
            return null;
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

    /** A recursive-descent reader over one document; fills the members' slots of {@code out}. */
    private static final class Parser {
        private final String s;
        private final int len;
        private final int maxDepth;
        private final String[] names;
        private final String[] out;
        private int pos;
        private int depth;

        Parser(String s, int maxDepth, String[] names, String[] out) {
            this.s = s;
            this.len = s.length();
            this.maxDepth = maxDepth;
            this.names = names;
            this.out = out;
        }

        String document() {
            blanks();
            String kind = value(-1, true);
            blanks();
            if (pos != len) {
                throw NotJson.INSTANCE;
            }
            return kind;
        }

        /** Reads one value; records its kind and text in member slot {@code slot} (if >= 0). */
        private String value(int slot, boolean root) {
            if (pos >= len) {
                throw NotJson.INSTANCE;
            }
            char c = s.charAt(pos);
            String kind;
            String text = null;
            switch (c) {
                case '{':
                    object(root);
                    kind = OBJECT;
                    break;
                case '[':
                    array();
                    kind = ARRAY;
                    break;
                case '"':
                    text = string(slot >= 0);
                    kind = STRING;
                    break;
                case 't':
                    text = literal("true");
                    kind = BOOLEAN;
                    break;
                case 'f':
                    text = literal("false");
                    kind = BOOLEAN;
                    break;
                case 'n':
                    literal("null");
                    kind = NULL;
                    break;
                default:
                    text = number();
                    kind = NUMBER;
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
                char c = peek();
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
                char c = peek();
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
            while (end < len && s.charAt(end) != '"' && s.charAt(end) != '\\') {
                end++;
            }
            if (end < len && s.charAt(end) == '"') {
                string(false); // validates and moves past the key
                int n = end - start;
                for (int i = 0; i < names.length; i++) {
                    if (names[i].length() == n && s.regionMatches(start, names[i], 0, n)) {
                        return i;
                    }
                }
                return -1;
            }
            String key = string(true); // a key with escapes: compare its decoded text
            for (int i = 0; i < names.length; i++) {
                if (names[i].equals(key)) {
                    return i;
                }
            }
            return -1;
        }

        private int skipKey() {
            string(false);
            return -1;
        }

        /** A string from its opening quote; its decoded content when {@code decode}, else null. */
        private String string(boolean decode) {
            int start = ++pos;
            StringBuilder sb = null;
            while (true) {
                if (pos >= len) {
                    throw NotJson.INSTANCE;
                }
                char c = s.charAt(pos);
                if (c == '"') {
                    String result = null;
                    if (decode) {
                        result = sb == null ? s.substring(start, pos) : sb.append(s, start, pos).toString();
                    }
                    pos++;
                    return result;
                }
                if (c < 0x20) {
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
                    sb.append(s, start, pos);
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
            char e = s.charAt(pos + 1);
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
                        int digit = Character.digit(s.charAt(pos + i), 16);
                        if (digit < 0 || s.charAt(pos + i) > 'f') {
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

        private String literal(String word) {
            if (!s.startsWith(word, pos)) {
                throw NotJson.INSTANCE;
            }
            pos += word.length();
            return word;
        }

        /** A number's literal text: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
        private String number() {
            int start = pos;
            if (peek() == '-') {
                pos++;
            }
            char c = peek();
            if (c == '0') {
                pos++;
            } else if (c >= '1' && c <= '9') {
                digits();
            } else {
                throw NotJson.INSTANCE;
            }
            if (pos < len && s.charAt(pos) == '.') {
                pos++;
                requireDigits();
            }
            if (pos < len && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
                pos++;
                if (pos < len && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) {
                    pos++;
                }
                requireDigits();
            }
            return s.substring(start, pos);
        }

        private void requireDigits() {
            char c = peek();
            if (c < '0' || c > '9') {
                throw NotJson.INSTANCE;
            }
            digits();
        }

        private void digits() {
            while (pos < len && s.charAt(pos) >= '0' && s.charAt(pos) <= '9') {
                pos++;
            }
        }

        private char peek() {
            if (pos >= len) {
                throw NotJson.INSTANCE;
            }
            return s.charAt(pos);
        }

        private void blanks() {
            while (pos < len) {
                char c = s.charAt(pos);
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                    return;
                }
                pos++;
            }
        }
    }
}

package lambda.speed.functions;

import java.time.Duration;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.data.binary.BinaryStringData;
import org.apache.flink.table.data.utils.JoinedRowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.BooleanType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.VarCharType;

/**
 * Whether each row is the first arrival of its key (a STRING column) within a time to live,
 * appended to the row as a BOOLEAN column: a keyed streaming operator on Flink's internal rows.
 *
 * <p>The speed job deduplicates by event id and still counts the later copies, so it cannot drop
 * them as Flink's keep-first deduplicate does. In SQL that was a {@code COUNT(*) OVER} per id,
 * whose aggregate row (a count and its null bits) was read and written back in RocksDB for every
 * row. This operator keeps a one-byte flag per key, written once, at the first arrival: a lookup
 * per row and a write per new key, the least any keep-first deduplication can do
 * (docs/benchmarks.md, "The dedup as a flag"). It knows nothing of the contract: the job names the columns, and what a
 * first arrival or a copy counts as stays in the generated SQL.
 *
 * <p>State: the flag, keyed, with a time to live from the first arrival (processing time, never
 * returned once expired, removed by RocksDB's compaction); a copy that arrives later than that is
 * a first arrival again. Keyed state rescales with the job.
 */
public final class FirstArrival extends AbstractStreamOperator<RowData>
        implements OneInputStreamOperator<RowData, RowData> {

    private static final long serialVersionUID = 1L;

    private final long ttlMillis;

    private transient ValueState<Boolean> seen;
    private transient GenericRowData first;
    private transient GenericRowData again;

    FirstArrival(long ttlMillis) {
        this.ttlMillis = ttlMillis;
    }

    /**
     * {@code in} (internal rows) keyed by its STRING column {@code key}, with the BOOLEAN column
     * {@code outName} appended (TRUE for the key's first arrival within {@code ttlSeconds}), under
     * the operator uid {@code uid}.
     */
    public static SingleOutputStreamOperator<RowData> apply(
            DataStream<RowData> in, String key, long ttlSeconds, String outName, String uid) {
        RowType rowType = Rows.rowType(in);
        int keyField = Rows.index(rowType, key);
        if (!(rowType.getTypeAt(keyField) instanceof VarCharType)) {
            throw new IllegalArgumentException("column " + key + " is not a STRING in " + rowType);
        }
        return in.keyBy(new StringKey(keyField))
                .transform(
                        "first arrival per " + key,
                        Rows.appended(rowType, outName, new BooleanType(false)),
                        new FirstArrival(ttlSeconds * 1000))
                .uid(uid);
    }

    @Override
    public void open() throws Exception {
        super.open();
        ValueStateDescriptor<Boolean> descriptor = new ValueStateDescriptor<>("first-arrival", Types.BOOLEAN);
        // As Flink SQL configures its own state's time to live (StateConfigUtil.createTtlConfig).
        descriptor.enableTimeToLive(StateTtlConfig.newBuilder(Duration.ofMillis(ttlMillis))
                .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .build());
        seen = getPartitionedState(descriptor);
        first = GenericRowData.of(true);
        again = GenericRowData.of(false);
    }

    @Override
    public void processElement(StreamRecord<RowData> element) throws Exception {
        RowData in = element.getValue();
        boolean isFirst = seen.value() == null;
        if (isFirst) {
            seen.update(Boolean.TRUE);
        }
        output.collect(element.replace(new JoinedRowData(in.getRowKind(), in, isFirst ? first : again)));
    }

    /**
     * A row's STRING column as the key: a copy, since the row may be reused once it is handed on.
     * A NULL key is refused: the job keys only rows whose key column the validation required.
     */
    static final class StringKey implements KeySelector<RowData, StringData>, ResultTypeQueryable<StringData> {
        private static final long serialVersionUID = 1L;
        private final int field;

        StringKey(int field) {
            this.field = field;
        }

        @Override
        public StringData getKey(RowData row) {
            if (row.isNullAt(field)) {
                throw new IllegalArgumentException("NULL key in column " + field);
            }
            return BinaryStringData.fromBytes(row.getString(field).toBytes());
        }

        @Override
        public TypeInformation<StringData> getProducedType() {
            return InternalTypeInfo.of(new VarCharType(false, VarCharType.MAX_LENGTH));
        }
    }
}

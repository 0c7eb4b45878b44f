package lambda.speed.functions;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.utils.JoinedRowData;
import org.apache.flink.table.types.logical.BigIntType;
import org.apache.flink.table.types.logical.RowType;

/**
 * The running maximum of one BIGINT column per value of an INT key column, appended to each row,
 * for rows in the order they arrive: a streaming operator on Flink's internal rows, chained to its
 * input.
 *
 * <p>The speed job judges lateness by the progress of the Kafka partition each event arrived on
 * (docs/specs/speed.md, "Lateness"). In SQL that is an OVER aggregate keyed by partition: a hash
 * exchange of every row and a state read and write per row. A Kafka source subtask already emits
 * each of its partitions in offset order, so this operator, chained to the source, sees the same
 * order and keeps the maxima on the heap, one per partition. It knows nothing of the contract: the
 * job names the columns, and the lateness rule stays in the generated SQL.
 *
 * <p>A row whose {@code skip} column is not NULL passes through without counting (the job skips
 * malformed rows). The output column is NULL until the key's first counted value. The input row is
 * not copied: the output joins it with the new column.
 *
 * <p>State: the maxima, as union list state. After a restore, also with a different parallelism,
 * every subtask receives every snapshotted pair and keeps the largest value per key, which is the
 * value of the subtask that read that key at the checkpoint (a maximum never decreases).
 */
public final class RunningMax extends AbstractStreamOperator<RowData>
        implements OneInputStreamOperator<RowData, RowData> {

    private static final long serialVersionUID = 1L;

    private final int keyField;
    private final int valueField;
    private final int skipField;

    private transient Map<Integer, Long> maxima;
    private transient ListState<long[]> snapshot;

    RunningMax(int keyField, int valueField, int skipField) {
        this.keyField = keyField;
        this.valueField = valueField;
        this.skipField = skipField;
    }

    /**
     * {@code in} (internal rows) with the column {@code outName} (BIGINT) appended, under the
     * operator uid {@code uid} (so a savepoint finds its state after any change to the SQL around
     * it).
     */
    public static SingleOutputStreamOperator<RowData> apply(
            DataStream<RowData> in, String key, String value, String skip, String outName, String uid) {
        RowType rowType = Rows.rowType(in);
        RunningMax op = new RunningMax(
                Rows.index(rowType, key), Rows.index(rowType, value), Rows.index(rowType, skip));
        return in.transform(
                        "running max of " + value + " per " + key,
                        Rows.appended(rowType, outName, new BigIntType()),
                        op)
                .uid(uid);
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        snapshot = context.getOperatorStateStore()
                .getUnionListState(new ListStateDescriptor<>(
                        "maxima", PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO));
        maxima = new HashMap<>();
        for (long[] pair : snapshot.get()) {
            maxima.merge((int) pair[0], pair[1], Math::max);
        }
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        List<long[]> pairs = new ArrayList<>(maxima.size());
        maxima.forEach((k, v) -> pairs.add(new long[] {k, v}));
        snapshot.update(pairs);
    }

    @Override
    public void processElement(StreamRecord<RowData> element) {
        RowData in = element.getValue();
        Long max = null;
        if (!in.isNullAt(keyField)) {
            int key = in.getInt(keyField);
            if (in.isNullAt(skipField) && !in.isNullAt(valueField)) {
                max = maxima.merge(key, in.getLong(valueField), Math::max);
            } else {
                max = maxima.get(key);
            }
        }
        RowData out = new JoinedRowData(in.getRowKind(), in, GenericRowData.of(max));
        output.collect(element.replace(out));
    }
}

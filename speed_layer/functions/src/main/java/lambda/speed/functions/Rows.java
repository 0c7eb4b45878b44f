package lambda.speed.functions;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.DataTypeQueryable;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.RowType;

/** What the job's DataStream operators read of their input rows' type, and the type they answer. */
final class Rows {
    private Rows() {}

    /** The row type of a stream of internal rows from {@code toDataStream} (an ExternalTypeInfo
     * bridged to RowData, or an operator's InternalTypeInfo: both carry their data type). */
    static RowType rowType(DataStream<RowData> in) {
        return (RowType) ((DataTypeQueryable) in.getType()).getDataType().getLogicalType();
    }

    /** The position of column {@code name}; refused when absent. */
    static int index(RowType rowType, String name) {
        int i = rowType.getFieldNames().indexOf(name);
        if (i < 0) {
            throw new IllegalArgumentException("no column " + name + " in " + rowType);
        }
        return i;
    }

    /** {@code rowType} with one more column at the end, as an operator's output type. */
    static InternalTypeInfo<RowData> appended(RowType rowType, String name, LogicalType type) {
        List<RowType.RowField> fields = new ArrayList<>(rowType.getFields());
        fields.add(new RowType.RowField(name, type));
        return InternalTypeInfo.of(new RowType(fields));
    }
}

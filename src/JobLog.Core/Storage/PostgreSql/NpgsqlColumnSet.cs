using Npgsql;
using NpgsqlTypes;

namespace JobLog.Storage.PostgreSql;

/// <summary>Column arrays for one <c>unnest</c> statement, one per column of a <see cref="LedgerColumn{TRow}"/> list.</summary>
internal sealed class NpgsqlColumnSet
{
    private readonly ColumnType[] _types;
    private readonly System.Collections.IList[] _lists;

    public NpgsqlColumnSet(ColumnType[] types, int capacity)
    {
        _types = types;
        _lists = new System.Collections.IList[types.Length];
        for (var i = 0; i < types.Length; i++)
        {
            _lists[i] = types[i] switch
            {
                ColumnType.Uuid => new List<Guid?>(capacity),
                ColumnType.Timestamp => new List<DateTime?>(capacity),
                ColumnType.Integer => new List<int?>(capacity),
                ColumnType.Boolean => new List<bool?>(capacity),
                ColumnType.Real => new List<double?>(capacity),
                _ => new List<string?>(capacity),
            };
        }
    }

    /// <summary>Arrays for <paramref name="columns"/>, filled from <paramref name="rows"/>.</summary>
    public static NpgsqlColumnSet Of<TRow>(LedgerColumn<TRow>[] columns, List<TRow> rows)
    {
        var set = new NpgsqlColumnSet(Types(columns), rows.Count);
        foreach (var row in rows)
        {
            set.Add(columns, row);
        }

        return set;
    }

    public static ColumnType[] Types<TRow>(LedgerColumn<TRow>[] columns)
    {
        var types = new ColumnType[columns.Length];
        for (var i = 0; i < columns.Length; i++)
        {
            types[i] = columns[i].Type;
        }

        return types;
    }

    /// <summary>Appends <paramref name="row"/>'s values, one to each column's array.</summary>
    public void Add<TRow>(LedgerColumn<TRow>[] columns, in TRow row)
    {
        var sink = new Sink(this);
        LedgerColumn.WriteRow(columns, ref sink, row);
    }

    public NpgsqlBatchCommand Command(string sql)
    {
        var command = new NpgsqlBatchCommand(sql);
        for (var i = 0; i < _types.Length; i++)
        {
            var (type, value) = _types[i] switch
            {
                ColumnType.Uuid => (NpgsqlDbType.Uuid, (object)List<Guid?>(i).ToArray()),
                ColumnType.Timestamp => (NpgsqlDbType.TimestampTz, List<DateTime?>(i).ToArray()),
                ColumnType.Integer => (NpgsqlDbType.Integer, List<int?>(i).ToArray()),
                ColumnType.Boolean => (NpgsqlDbType.Boolean, List<bool?>(i).ToArray()),
                ColumnType.Real => (NpgsqlDbType.Double, List<double?>(i).ToArray()),
                _ => (NpgsqlDbType.Text, List<string?>(i).ToArray()),
            };
            command.Parameters.Add(new NpgsqlParameter { NpgsqlDbType = NpgsqlDbType.Array | type, Value = value });
        }

        return command;
    }

    private List<T> List<T>(int column) => (List<T>)_lists[column];

    /// <summary>Appends a row's columns to the column arrays, in order.</summary>
    private struct Sink(NpgsqlColumnSet set) : IRowSink
    {
        private int _column;

        public void Guid(Guid? value) => set.List<Guid?>(_column++).Add(value);

        public void Text(string? value) => set.List<string?>(_column++).Add(value);

        public void Time(DateTime? value) =>
            set.List<DateTime?>(_column++).Add(value is { } v ? DateTime.SpecifyKind(v, DateTimeKind.Utc) : null);

        public void Int(int? value) => set.List<int?>(_column++).Add(value);

        public void Bool(bool? value) => set.List<bool?>(_column++).Add(value);

        public void Real(double? value) => set.List<double?>(_column++).Add(value);
    }
}

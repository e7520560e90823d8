namespace JobLog.Storage;

/// <summary>The type of a write-path column, as the write path binds it; each database maps it to its own type.</summary>
internal enum ColumnType
{
    /// <summary>A <see cref="Guid"/>.</summary>
    Uuid,

    /// <summary>A string.</summary>
    Text,

    /// <summary>A UTC <see cref="DateTime"/>.</summary>
    Timestamp,

    /// <summary>An <see cref="int"/> (enums as their number).</summary>
    Integer,

    /// <summary>A <see cref="bool"/>.</summary>
    Boolean,

    /// <summary>A <see cref="double"/>.</summary>
    Real,
}

/// <summary>Reads one column's value from a row without copying the row.</summary>
internal delegate T ColumnValue<TRow, T>(in TRow row);

/// <summary>Receives a row's values column by column (a prepared SQLite statement, PostgreSQL arrays, …).</summary>
internal interface IRowSink
{
    void Guid(Guid? value);

    void Text(string? value);

    void Time(DateTime? value);

    void Int(int? value);

    void Bool(bool? value);

    void Real(double? value);
}

/// <summary>
/// One column of a write-path row: its name, its type, whether it may be null, and how to read it from the row. The
/// statements and the binders of both databases are generated from lists of these (<see cref="LedgerColumns"/>), so a
/// value can only land in the column it was read for; a test checks every list against the EF model.
/// </summary>
/// <typeparam name="TRow">What the value is read from.</typeparam>
internal sealed class LedgerColumn<TRow>
{
    private readonly ColumnValue<TRow, Guid?>? _uuid;
    private readonly ColumnValue<TRow, string?>? _text;
    private readonly ColumnValue<TRow, DateTime?>? _time;
    private readonly ColumnValue<TRow, int?>? _int;
    private readonly ColumnValue<TRow, bool?>? _bool;
    private readonly ColumnValue<TRow, double?>? _real;

    private LedgerColumn(string name, ColumnType type, bool nullable, bool stored)
    {
        Name = name;
        Type = type;
        Nullable = nullable;
        Stored = stored;
    }

    private LedgerColumn(string name, bool nullable, bool stored, ColumnValue<TRow, Guid?> value)
        : this(name, ColumnType.Uuid, nullable, stored) => _uuid = value;

    private LedgerColumn(string name, bool nullable, bool stored, ColumnValue<TRow, string?> value)
        : this(name, ColumnType.Text, nullable, stored) => _text = value;

    private LedgerColumn(string name, bool nullable, bool stored, ColumnValue<TRow, DateTime?> value)
        : this(name, ColumnType.Timestamp, nullable, stored) => _time = value;

    private LedgerColumn(string name, bool nullable, bool stored, ColumnValue<TRow, int?> value)
        : this(name, ColumnType.Integer, nullable, stored) => _int = value;

    private LedgerColumn(string name, bool nullable, bool stored, ColumnValue<TRow, bool?> value)
        : this(name, ColumnType.Boolean, nullable, stored) => _bool = value;

    private LedgerColumn(string name, bool nullable, bool stored, ColumnValue<TRow, double?> value)
        : this(name, ColumnType.Real, nullable, stored) => _real = value;

    /// <summary>The column's name in the table (or, when not <see cref="Stored"/>, the name of the value in the statement).</summary>
    public string Name { get; }

    public ColumnType Type { get; }

    /// <summary>Whether the value may be null (must match the EF model's nullability).</summary>
    public bool Nullable { get; }

    /// <summary>False for a value that only steers the statement (it is not a column of the table).</summary>
    public bool Stored { get; }

    public static LedgerColumn<TRow> Uuid(string name, ColumnValue<TRow, Guid?> value, bool nullable = false, bool stored = true) => new(name, nullable, stored, value);

    public static LedgerColumn<TRow> Text(string name, ColumnValue<TRow, string?> value, bool nullable = true) => new(name, nullable, true, value);

    public static LedgerColumn<TRow> Time(string name, ColumnValue<TRow, DateTime?> value, bool nullable = true) => new(name, nullable, true, value);

    public static LedgerColumn<TRow> Int(string name, ColumnValue<TRow, int?> value, bool nullable = false, bool stored = true) => new(name, nullable, stored, value);

    public static LedgerColumn<TRow> Bool(string name, ColumnValue<TRow, bool?> value, bool nullable = false, bool stored = true) => new(name, nullable, stored, value);

    public static LedgerColumn<TRow> Real(string name, ColumnValue<TRow, double?> value, bool nullable = true) => new(name, nullable, true, value);

    /// <summary>Writes this column's value of <paramref name="row"/> to <paramref name="sink"/> (no boxing).</summary>
    public void Write<TSink>(ref TSink sink, in TRow row)
        where TSink : struct, IRowSink
    {
        switch (Type)
        {
            case ColumnType.Uuid:
                sink.Guid(_uuid!(row));
                break;
            case ColumnType.Text:
                sink.Text(_text!(row));
                break;
            case ColumnType.Timestamp:
                sink.Time(_time!(row));
                break;
            case ColumnType.Integer:
                sink.Int(_int!(row));
                break;
            case ColumnType.Boolean:
                sink.Bool(_bool!(row));
                break;
            default:
                sink.Real(_real!(row));
                break;
        }
    }

    /// <summary>This column's value of <paramref name="row"/>, boxed (for the write path's rare kinds).</summary>
    public object? Value(in TRow row) => Type switch
    {
        ColumnType.Uuid => _uuid!(row),
        ColumnType.Text => _text!(row),
        ColumnType.Timestamp => _time!(row),
        ColumnType.Integer => _int!(row),
        ColumnType.Boolean => _bool!(row),
        _ => _real!(row),
    };
}

/// <summary>Writes whole rows and finds columns in a column list.</summary>
internal static class LedgerColumn
{
    /// <summary>Writes every column of <paramref name="row"/> to <paramref name="sink"/>, in list order.</summary>
    public static void WriteRow<TRow, TSink>(LedgerColumn<TRow>[] columns, ref TSink sink, in TRow row)
        where TSink : struct, IRowSink
    {
        foreach (var column in columns)
        {
            column.Write(ref sink, row);
        }
    }

    /// <summary>The values of <paramref name="row"/>, boxed, in list order.</summary>
    public static object?[] Values<TRow>(LedgerColumn<TRow>[] columns, in TRow row)
    {
        var values = new object?[columns.Length];
        for (var i = 0; i < columns.Length; i++)
        {
            values[i] = columns[i].Value(row);
        }

        return values;
    }

    /// <summary>The position of the column named <paramref name="name"/>; throws when the list has none.</summary>
    public static int IndexOf<TRow>(LedgerColumn<TRow>[] columns, string name)
    {
        for (var i = 0; i < columns.Length; i++)
        {
            if (columns[i].Name == name)
            {
                return i;
            }
        }

        throw new InvalidOperationException($"JobLog: no column {name} in the list of {typeof(TRow).Name}.");
    }
}

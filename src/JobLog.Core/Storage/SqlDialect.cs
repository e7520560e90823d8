using System.Data.Common;
using System.Globalization;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace JobLog.Storage;

/// <summary>The few differences between SQLite and PostgreSQL that the raw write path needs.</summary>
internal abstract class SqlDialect
{
    public abstract LedgerProvider Provider { get; }

    /// <summary>A <c>WHERE</c> fragment: <paramref name="column"/> is one of the ids in the array parameter <paramref name="parameter"/>.</summary>
    public abstract string InIdList(string column, string parameter);

    /// <summary>Appended to a row-selecting subquery so concurrent sweepers skip each other's rows.</summary>
    public abstract string SkipLocked { get; }

    /// <summary>After a table name: the index the statement must use (SQLite's planner, without statistics, may not see a partial index).</summary>
    public abstract string IndexedBy(string index);

    public abstract DbConnection CreateConnection(string connectionString);

    /// <summary>Converts a CLR value to what the provider stores for the EF model's mapping.</summary>
    public abstract object ToDb(object? value);

    public abstract object IdList(IReadOnlyCollection<Guid> ids);

    /// <summary>Adds <paramref name="value"/> (converted by <see cref="ToDb"/>) to <paramref name="command"/> as <c>@p</c><paramref name="index"/>.</summary>
    public virtual void AddParameter(DbCommand command, int index, object? value)
    {
        var p = command.CreateParameter();
        p.ParameterName = "@p" + index.ToString(CultureInfo.InvariantCulture);
        p.Value = ToDb(value);
        command.Parameters.Add(p);
    }

    /// <summary>Reads a stored timestamp as UTC.</summary>
    public static DateTime ReadUtc(DbDataReader reader, int ordinal)
    {
        if (reader.GetFieldType(ordinal) == typeof(string))
        {
            return DateTime.SpecifyKind(
                DateTime.Parse(reader.GetString(ordinal), CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal),
                DateTimeKind.Utc);
        }

        // Npgsql's legacy timestamp behaviour (a process-wide switch) reads timestamptz as local time.
        var value = reader.GetDateTime(ordinal);
        return value.Kind == DateTimeKind.Local ? value.ToUniversalTime() : DateTime.SpecifyKind(value, DateTimeKind.Utc);
    }

    public static SqlDialect For(LedgerProvider provider) => provider switch
    {
        LedgerProvider.Sqlite => SqliteDialect.Instance,
        LedgerProvider.PostgreSql => PostgresDialect.Instance,
        _ => throw new InvalidOperationException("JobLog has no database: call AddJobLog(o => o.UseSqlite(...)) or o.UseNpgsql(...)."),
    };

    internal sealed class SqliteDialect : SqlDialect
    {
        public static readonly SqliteDialect Instance = new();

        public override LedgerProvider Provider => LedgerProvider.Sqlite;

        public override string SkipLocked => "";

        public override string IndexedBy(string index) => $" INDEXED BY \"{index}\"";

        public override string InIdList(string column, string parameter) => $"{column} IN (SELECT value FROM json_each({parameter}))";

        public override DbConnection CreateConnection(string connectionString) => new SqliteConnection(connectionString);

        // EF Core stores Guid as upper-case TEXT and DateTime as 'yyyy-MM-dd HH:mm:ss.FFFFFFF' on SQLite.
        public override object ToDb(object? value) => value switch
        {
            null => DBNull.Value,
            Guid g => g.ToString().ToUpperInvariant(),
            DateTime d => d.ToString("yyyy-MM-dd HH:mm:ss.FFFFFFF", CultureInfo.InvariantCulture),
            Enum e => Convert.ToInt32(e, CultureInfo.InvariantCulture),
            bool b => b ? 1 : 0,
            _ => value,
        };

        public override object IdList(IReadOnlyCollection<Guid> ids) =>
            "[" + string.Join(',', ids.Select(i => "\"" + i.ToString().ToUpperInvariant() + "\"")) + "]";
    }

    internal sealed class PostgresDialect : SqlDialect
    {
        public static readonly PostgresDialect Instance = new();

        public override LedgerProvider Provider => LedgerProvider.PostgreSql;

        public override string SkipLocked => " FOR UPDATE SKIP LOCKED";

        // PostgreSQL's planner has statistics and picks the partial index once the table is big enough to need it.
        public override string IndexedBy(string index) => "";

        public override string InIdList(string column, string parameter) => $"{column} = ANY({parameter})";

        public override DbConnection CreateConnection(string connectionString) => new NpgsqlConnection(connectionString);

        public override object ToDb(object? value) => value switch
        {
            null => DBNull.Value,
            DateTime d => DateTime.SpecifyKind(d, DateTimeKind.Utc),
            Enum e => Convert.ToInt32(e, CultureInfo.InvariantCulture),
            _ => value,
        };

        public override object IdList(IReadOnlyCollection<Guid> ids) => ids.ToArray();

        /// <remarks>
        /// A timestamp is sent as timestamptz, stated: Npgsql infers timestamp (without time zone) for a DateTime when the
        /// application sets Npgsql.EnableLegacyTimestampBehavior, and PostgreSQL would then shift it by the session's time
        /// zone when comparing it with a timestamptz column.
        /// </remarks>
        public override void AddParameter(DbCommand command, int index, object? value)
        {
            var p = Parameter(ToDb(value));
            p.ParameterName = "@p" + index.ToString(CultureInfo.InvariantCulture);
            command.Parameters.Add(p);
        }

        /// <summary>A positional parameter of a value <see cref="ToDb"/> converted; timestamps typed timestamptz.</summary>
        public static NpgsqlParameter Parameter(object value) => value is DateTime d
            ? new NpgsqlParameter { NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz, Value = DateTime.SpecifyKind(d, DateTimeKind.Utc) }
            : new NpgsqlParameter { Value = value };
    }
}

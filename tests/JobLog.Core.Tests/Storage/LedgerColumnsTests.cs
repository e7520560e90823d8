using System.Text.RegularExpressions;
using JobLog.Storage;
using JobLog.Storage.PostgreSql;
using JobLog.Storage.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Metadata;
using NUnit.Framework;

namespace JobLog.Core.Tests.Storage;

/// <summary>The write path's column lists (<see cref="LedgerColumns"/>) against the EF model each database migrates to.</summary>
[TestFixture(LedgerProvider.Sqlite)]
[TestFixture(LedgerProvider.PostgreSql)]
public partial class LedgerColumnsTests(LedgerProvider provider)
{
    private static readonly (Type Entity, string Name, Column[] Columns)[] s_lists =
    [
        (typeof(TaskLog), nameof(LedgerColumns.Task), Of(LedgerColumns.Task)),
        (typeof(TaskLog), nameof(LedgerColumns.TaskExtraData), Of(LedgerColumns.TaskExtraData)),
        (typeof(TaskRunLog), nameof(LedgerColumns.Run), Of(LedgerColumns.Run)),
        (typeof(TaskRunLog), nameof(LedgerColumns.RunFinish), Of(LedgerColumns.RunFinish)),
        (typeof(TaskRunLog), nameof(LedgerColumns.RunNextRetry), Of(LedgerColumns.RunNextRetry)),
        (typeof(TaskRunLog), nameof(LedgerColumns.RunFailForGood), Of(LedgerColumns.RunFailForGood)),
        (typeof(TaskRunLog), nameof(LedgerColumns.RunExpireOrphans), Of(LedgerColumns.RunExpireOrphans)),
        (typeof(CommandLog), nameof(LedgerColumns.Command), Of(LedgerColumns.Command)),
        (typeof(InputRequestLog), nameof(LedgerColumns.InputRequest), Of(LedgerColumns.InputRequest)),
        (typeof(OutputRequestLog), nameof(LedgerColumns.OutputRequest), Of(LedgerColumns.OutputRequest)),
        (typeof(OutputRequestRelatedObject), nameof(LedgerColumns.RelatedObject), Of(LedgerColumns.RelatedObject)),
    ];

    private static readonly Regex s_atP = AtPattern();
    private static readonly Regex s_dollar = DollarPattern();

    private sealed record Column(string Name, ColumnType Type, bool Nullable, bool Stored);

    private static Column[] Of<TRow>(LedgerColumn<TRow>[] columns) => [.. columns.Select(c => new Column(c.Name, c.Type, c.Nullable, c.Stored))];

    private IModel Model()
    {
        // Building the model needs no server.
        var connectionString = provider == LedgerProvider.Sqlite ? "Data Source=:memory:" : "Host=localhost;Database=joblog_model";
        using var context = LedgerDatabase.For(provider).ContextFactory(connectionString)();
        return context.GetService<IDesignTimeModel>().Model;
    }

    private bool StoreTypeFits(ColumnType type, string storeType) => provider == LedgerProvider.Sqlite
        ? storeType == type switch
        {
            ColumnType.Integer or ColumnType.Boolean => "INTEGER",
            ColumnType.Real => "REAL",
            _ => "TEXT",
        }
        : type switch
        {
            ColumnType.Uuid => storeType == "uuid",
            ColumnType.Text => storeType == "text" || storeType.StartsWith("character varying", StringComparison.Ordinal),
            ColumnType.Timestamp => storeType == NpgsqlJobLogDbContext.TimestampColumnType,
            ColumnType.Integer => storeType == "integer",
            ColumnType.Boolean => storeType == "boolean",
            _ => storeType == "double precision",
        };

    private static bool ClrTypeFits(ColumnType type, Type clr)
    {
        var t = Nullable.GetUnderlyingType(clr) ?? clr;
        return type switch
        {
            ColumnType.Uuid => t == typeof(Guid),
            ColumnType.Text => t == typeof(string),
            ColumnType.Timestamp => t == typeof(DateTime),
            ColumnType.Integer => t == typeof(int) || t.IsEnum,
            ColumnType.Boolean => t == typeof(bool),
            _ => t == typeof(double),
        };
    }

    [Test]
    public void EveryColumn_IsAColumnOfItsTable_WithACompatibleTypeAndTheSameNullability()
    {
        var model = Model();
        var problems = new List<string>();
        foreach (var (entity, name, columns) in s_lists)
        {
            var entityType = model.FindEntityType(entity) ?? throw new AssertionException($"{entity.Name} is not in the model.");
            var table = StoreObjectIdentifier.Table(entityType.GetTableName()!, entityType.GetSchema());
            var byColumn = entityType.GetProperties().ToDictionary(p => p.GetColumnName(table)!, StringComparer.Ordinal);
            foreach (var column in columns)
            {
                var where = $"{name}.{column.Name}";
                if (!column.Stored)
                {
                    if (byColumn.ContainsKey(column.Name))
                    {
                        problems.Add($"{where} steers the statement but is also a column of {table.Name}.");
                    }

                    continue;
                }

                if (!byColumn.TryGetValue(column.Name, out var property))
                {
                    problems.Add($"{where}: {table.Name} has no such column.");
                    continue;
                }

                if (!ClrTypeFits(column.Type, property.ClrType))
                {
                    problems.Add($"{where}: {column.Type} does not fit the property's {property.ClrType.Name}.");
                }

                var storeType = property.GetColumnType(table);
                if (!StoreTypeFits(column.Type, storeType))
                {
                    problems.Add($"{where}: {column.Type} does not fit the column's {storeType}.");
                }

                if (column.Nullable != property.IsColumnNullable(table))
                {
                    problems.Add($"{where}: nullable {column.Nullable}, the column {property.IsColumnNullable(table)}.");
                }
            }

            Assert.That(columns.Select(c => c.Name), Is.Unique, name);
        }

        Assert.That(problems, Is.Empty);
    }

    [Test]
    public void EveryStatement_NamesOneParameterPerColumnOfItsList()
    {
        var statements = new List<(string Name, string Sql, int Columns, Regex Parameter)>();
        if (provider == LedgerProvider.Sqlite)
        {
            statements.Add((nameof(SqliteStatements.InsertTaskIfMissing), SqliteStatements.InsertTaskIfMissing, LedgerColumns.Task.Length, s_atP));
            statements.Add((nameof(SqliteStatements.UpdateProducerFields), SqliteStatements.UpdateProducerFields, SqliteStatements.ProducerColumns.Length, s_atP));
            statements.Add((nameof(SqliteStatements.UpsertRun), SqliteStatements.UpsertRun, SqliteStatements.RunColumns.Length, s_atP));
        }
        else
        {
            statements.Add((nameof(PostgreSqlStatements.UpsertDispatchedTasks), PostgreSqlStatements.UpsertDispatchedTasks, LedgerColumns.Task.Length, s_dollar));
            statements.Add((nameof(PostgreSqlStatements.InsertTasksIfMissing), PostgreSqlStatements.InsertTasksIfMissing, LedgerColumns.Task.Length, s_dollar));
            statements.Add((nameof(PostgreSqlStatements.UpsertRuns), PostgreSqlStatements.UpsertRuns, LedgerColumns.Run.Length, s_dollar));
            statements.Add((nameof(PostgreSqlStatements.FinishRuns), PostgreSqlStatements.FinishRuns, LedgerColumns.RunFinish.Length, s_dollar));
            statements.Add((nameof(PostgreSqlStatements.SetNextRetries), PostgreSqlStatements.SetNextRetries, LedgerColumns.RunNextRetry.Length, s_dollar));
        }

        foreach (var kind in Enum.GetValues<RunUpdateKind>())
        {
            var (sql, columns) = LedgerSql.RunUpdate(kind);
            statements.Add((kind.ToString(), sql, columns.Length, s_atP));
        }

        statements.Add((nameof(LedgerSql.SetExtraData), LedgerSql.SetExtraData, LedgerColumns.TaskExtraData.Length, s_atP));

        foreach (var (name, sql, columns, parameter) in statements)
        {
            var named = parameter.Matches(sql).Select(m => int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).Distinct().Order();
            var offset = parameter == s_dollar ? 1 : 0;
            Assert.That(named, Is.EqualTo(Enumerable.Range(offset, columns)), name);
        }
    }

    [GeneratedRegex(@"@p(\d+)")]
    private static partial Regex AtPattern();

    [GeneratedRegex(@"\$(\d+)")]
    private static partial Regex DollarPattern();
}

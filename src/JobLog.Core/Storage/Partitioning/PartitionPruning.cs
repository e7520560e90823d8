using System.Linq.Expressions;
using System.Reflection;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Query.SqlExpressions;
using Microsoft.EntityFrameworkCore.Storage;

namespace JobLog.Storage.Partitioning;

/// <summary>
/// A run's partition named in a query over the tasks (a partitioned PostgreSQL ledger only: the column exists nowhere
/// else). A task's runs share its <see cref="PartitionDay"/>, but the EF model does not know the column, so a correlated
/// <c>EXISTS</c> over the runs by <c>TaskId</c> alone reads every run partition for each task, or, with many tasks to
/// check, PostgreSQL hashes the runs it matches once for each task partition it scans (the queue filter at 1 M tasks:
/// 65,630 run ids hashed 11 times, 1.3 s; docs/scale.md "Session 10 (part)").
/// </summary>
internal static class PartitionPruning
{
    private static readonly MethodInfo s_sameDay = typeof(PartitionPruning).GetMethod(nameof(SameDay))!;

    /// <summary>
    /// In a query: the run's <see cref="PartitionDay.Column"/> is its task's, written <c>r."PartitionDay" &gt;= t."PartitionDay"
    /// AND r."PartitionDay" &lt;= t."PartitionDay"</c>. PostgreSQL prunes the runs to the task's partition at run time, and
    /// the range (not an equality) keeps it from turning the <c>EXISTS</c> into a hash of every matching run (it only
    /// hashes equalities with the outer row), so each task costs one index probe in one partition.
    /// </summary>
    /// <param name="runTaskId">The run's <c>TaskId</c> column.</param>
    /// <param name="taskId">The task's <c>Id</c> column (of the table itself, not of a subquery over it).</param>
    /// <returns>Not callable outside a query.</returns>
    public static bool SameDay(Guid runTaskId, Guid taskId) =>
        throw new InvalidOperationException("PartitionPruning.SameDay is translated to SQL, not called.");

    private static readonly MethodInfo s_dayOf = typeof(PartitionPruning).GetMethod(nameof(DayOf))!;

    /// <summary>
    /// In a query: the row of <paramref name="rowTaskId"/> (a column of a query that also gives its row's
    /// <see cref="PartitionDay.Column"/>: the search's side table, <c>PostgreSqlSearch.TasksWithErrorContaining</c>) is in
    /// the day <paramref name="taskId"/> carries, written <c>s."PartitionDay" = joblog_id_day(t."Id")</c>. The task may be
    /// read through a subquery that does not carry its own day (the search's newest rows): the day is computed from its id,
    /// as every writer computes it. PostgreSQL prunes the side table to that day's partition at run time.
    /// </summary>
    /// <param name="rowTaskId">The row's task id column.</param>
    /// <param name="taskId">The task's id.</param>
    /// <returns>Not callable outside a query.</returns>
    public static bool DayOf(Guid rowTaskId, Guid taskId) =>
        throw new InvalidOperationException("PartitionPruning.DayOf is translated to SQL, not called.");

    /// <summary>Registers <see cref="SameDay"/> and <see cref="DayOf"/> (the PostgreSQL context's model).</summary>
    /// <param name="modelBuilder">The model.</param>
    public static void Configure(ModelBuilder modelBuilder)
    {
        modelBuilder.HasDbFunction(s_sameDay).HasTranslation(Translate);
        modelBuilder.HasDbFunction(s_dayOf).HasTranslation(TranslateDayOf);
    }

    private static SqlExpression TranslateDayOf(IReadOnlyList<SqlExpression> args)
    {
        var boolean = new BoolTypeMapping("boolean");
        // The id of a raw SQL query's row comes cast (`s."Value"::uuid`): the column is under the cast.
        var column = args[0] is SqlUnaryExpression { OperatorType: ExpressionType.Convert, Operand: ColumnExpression under } ? under : args[0];
        if (column is not ColumnExpression row)
        {
            return new SqlBinaryExpression(ExpressionType.Equal, args[0], args[1], typeof(bool), boolean);
        }

        var integer = new IntTypeMapping("integer");
        var rowDay = new ColumnExpression(PartitionDay.Column, row.TableAlias, typeof(int), integer, nullable: false);
        var day = new SqlFunctionExpression(PartitionDay.Function, [args[1]], nullable: true, argumentsPropagateNullability: [true], typeof(int), integer);
        return new SqlBinaryExpression(ExpressionType.Equal, rowDay, day, typeof(bool), boolean);
    }

    private static SqlExpression Translate(IReadOnlyList<SqlExpression> args)
    {
        var boolean = new BoolTypeMapping("boolean");
        if (args[0] is not ColumnExpression run || args[1] is not ColumnExpression task)
        {
            // Not two table columns (e.g. the task read through a subquery that does not carry the key): no pruning, and
            // the correlation the query already has, so the same rows.
            return new SqlBinaryExpression(ExpressionType.Equal, args[0], args[1], typeof(bool), boolean);
        }

        var integer = new IntTypeMapping("integer");
        var runDay = new ColumnExpression(PartitionDay.Column, run.TableAlias, typeof(int), integer, nullable: false);
        var taskDay = new ColumnExpression(PartitionDay.Column, task.TableAlias, typeof(int), integer, nullable: false);
        return new SqlBinaryExpression(
            ExpressionType.AndAlso,
            new SqlBinaryExpression(ExpressionType.GreaterThanOrEqual, runDay, taskDay, typeof(bool), boolean),
            new SqlBinaryExpression(ExpressionType.LessThanOrEqual, runDay, taskDay, typeof(bool), boolean),
            typeof(bool),
            boolean);
    }
}

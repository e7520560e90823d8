using System.Data;
using JobLog.Storage;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Npgsql;
using SQLitePCL;

namespace JobLog.Querying;

/// <summary>
/// The time one search (<c>q</c>) may read for (<see cref="JobLogOptions.SearchBudget"/>): each of its reads runs under it,
/// and a read it cuts short gives null instead of its rows (docs/search.md, "The read budget"). PostgreSQL: the read's
/// token, which Npgsql turns into a cancel request for the running statement (SQLSTATE 57014; the connection stays usable).
/// SQLite: <c>sqlite3_interrupt</c> on the connection when the budget is spent during the read, which ends the statement
/// inside its step (Microsoft.Data.Sqlite checks a token between rows, not inside one long <c>sqlite3_step</c>: a search's
/// index step is one).
/// </summary>
internal sealed class ReadBudget : IDisposable
{
    private readonly JobLogDbContext _db;
    private readonly CancellationToken _caller;
    private readonly CancellationTokenSource _spent;
    private readonly CancellationTokenSource _read;

    public ReadBudget(JobLogDbContext db, TimeSpan budget, TimeProvider time, CancellationToken ct)
    {
        _db = db;
        _caller = ct;
        Budget = budget;
        _spent = budget == Timeout.InfiniteTimeSpan ? new CancellationTokenSource() : new CancellationTokenSource(budget, time);
        _read = CancellationTokenSource.CreateLinkedTokenSource(_spent.Token, ct);
    }

    /// <summary>The time the search may read for.</summary>
    public TimeSpan Budget { get; }

    /// <summary>The budget is spent (and the caller did not cancel).</summary>
    public bool RanOut => _spent.IsCancellationRequested && !_caller.IsCancellationRequested;

    /// <summary>Ends the budget now (the tests' way to make a read run out where they want it).</summary>
    public void Spend() => _spent.Cancel();

    /// <summary>
    /// Runs <paramref name="read"/> under the budget: its rows, or null when the budget ran out before or during it.
    /// </summary>
    /// <exception cref="OperationCanceledException">The caller's token was canceled.</exception>
    public Task<T?> ReadAsync<T>(Func<CancellationToken, Task<T>> read)
        where T : class => ReadAsync(read, interrupt: true);

    /// <summary>
    /// Runs a search's index step: on PostgreSQL as <see cref="ReadAsync{T}(Func{CancellationToken, Task{T}})"/>; on
    /// SQLite to its end once begun (null only when the budget ran out before it). An interrupt does not stop FTS5 inside
    /// its lookup (it reads its index through blob handles), and one that fired there made the step slower, not shorter:
    /// the 200 zeros at 1 M tasks 806 ms without a budget, 2,112 ms with 0.5 s at the same load
    /// (docs/reviews/session45-pages.md). The rows it gives are the whole answer.
    /// </summary>
    public Task<T?> ReadIndexAsync<T>(Func<CancellationToken, Task<T>> read)
        where T : class => ReadAsync(read, interrupt: _db.Database.GetDbConnection() is not SqliteConnection);

    private async Task<T?> ReadAsync<T>(Func<CancellationToken, Task<T>> read, bool interrupt)
        where T : class
    {
        _caller.ThrowIfCancellationRequested();
        if (_spent.IsCancellationRequested)
        {
            return null;
        }

        if (!interrupt)
        {
            return await read(_caller).ConfigureAwait(false);
        }

        var sqlite = _db.Database.GetDbConnection() as SqliteConnection;
        var opened = false;
        try
        {
            if (sqlite is not null && sqlite.State != ConnectionState.Open)
            {
                // Opened here so that the interrupt is of the connection the read runs on, and never after it goes back to the pool.
                await _db.Database.OpenConnectionAsync(_read.Token).ConfigureAwait(false);
                opened = true;
            }

            // SQLite: the statement interrupted where it is, inside its step (sqlite3_interrupt: a flag its virtual machine
            // reads, no callback into .NET; a progress handler calls .NET every N instructions, FTS5's own reads included,
            // and made the 200 zeros' search at 1 M tasks 16.4 s against 4.7 s, unbounded). Disposed, the registration waits for a running
            // callback, so the connection is never interrupted after the read, nor once it is closed.
            using (sqlite is not null ? _read.Token.Register(static state => raw.sqlite3_interrupt((sqlite3)state!), sqlite.Handle) : default)
            {
                var rows = await read(_read.Token).ConfigureAwait(false);
                // FTS5 reads its index through statements of its own, which an interrupt ends too; a module that took such
                // an error for the end of its data would give fewer rows without an error. Rows read once the budget was
                // spent are not trusted: the read ran out.
                return sqlite is not null && _spent.IsCancellationRequested && !_caller.IsCancellationRequested ? null : rows;
            }
        }
        catch (Exception e) when (!_caller.IsCancellationRequested && _spent.IsCancellationRequested && IsStop(e))
        {
            return null;
        }
        catch (SqliteException e) when (_caller.IsCancellationRequested && e.SqliteErrorCode == raw.SQLITE_INTERRUPT)
        {
            throw new OperationCanceledException(_caller);
        }
        finally
        {
            if (opened)
            {
                await _db.Database.CloseConnectionAsync().ConfigureAwait(false);
            }
        }
    }

    public void Dispose()
    {
        _read.Dispose();
        _spent.Dispose();
    }

    // What a read cut short throws: the token's cancellation (Npgsql's, EF Core's), PostgreSQL's 57014 (query_canceled),
    // SQLite's SQLITE_INTERRUPT.
    private static bool IsStop(Exception e)
    {
        for (var inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is OperationCanceledException
                || inner is PostgresException { SqlState: PostgresErrorCodes.QueryCanceled }
                || inner is SqliteException { SqliteErrorCode: raw.SQLITE_INTERRUPT })
            {
                return true;
            }
        }

        return false;
    }
}

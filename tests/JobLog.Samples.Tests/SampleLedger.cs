using JobLog.Testing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace JobLog.Samples.Tests;

/// <summary>Runs a sample's host against a throwaway SQLite ledger and reads what it recorded.</summary>
internal static class SampleLedger
{
    public static string[] Args(TestLedger ledger) => ["--ConnectionStrings:JobLog=" + ledger.ConnectionString];

    public static async Task<List<TaskLog>> WaitForAsync(IHost host, Func<List<TaskLog>, bool> done, string because)
    {
        List<TaskLog> tasks = [];
        await LedgerHost.EventuallyAsync(async () =>
        {
            await using var scope = host.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<JobLogDbContext>();
            tasks = await db.TaskLogs.AsNoTracking().Include(t => t.Runs).ToListAsync();
            return done(tasks);
        }, TimeSpan.FromSeconds(60), because);
        return tasks;
    }
}

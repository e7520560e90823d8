namespace JobLog.Testing;

/// <summary>Creates a throwaway ledger of the provider a fixture is parameterised with.</summary>
public static class Ledgers
{
    public static async Task<TestLedger> CreateAsync(LedgerProvider provider) =>
        provider == LedgerProvider.PostgreSql ? await TestLedger.PostgresAsync() : TestLedger.Sqlite();
}

// Creates a blob container in Azurite (object_store cannot create containers).
//   node create-container.js BLOB_ENDPOINT CONTAINER
// Succeeds when the container exists already. Azurite's well-known development account.
const { BlobServiceClient, StorageSharedKeyCredential } = require("@azure/storage-blob");

const [endpoint, container] = process.argv.slice(2);
const account = "devstoreaccount1";
const key =
  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const client = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(account, key));
client
  .getContainerClient(container)
  .createIfNotExists()
  .then(() => process.exit(0))
  .catch((e) => {
    console.error(`creating container ${container} at ${endpoint}: ${e.message}`);
    process.exit(1);
  });
